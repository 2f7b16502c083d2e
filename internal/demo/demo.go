// Package demo is a small shop of HTTP services that call each other, run
// by `podwire demo` so there is live traffic to look at.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Ports of the services on 127.0.0.1; BasePort+i for Services[i].
const BasePort = 18480

// Services are the demo's services in start order; "loadgen" drives them.
var Services = []string{"pricing", "catalog", "cart", "frontend", "loadgen"}

// Addr is the address of a service.
func Addr(name string) string {
	for i, s := range Services {
		if s == name {
			return "127.0.0.1:" + strconv.Itoa(BasePort+i)
		}
	}
	return ""
}

var client = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

// Run runs one service until ctx ends.
func Run(ctx context.Context, name string) error {
	if name == "loadgen" {
		return loadgen(ctx)
	}
	mux := http.NewServeMux()
	switch name {
	case "pricing":
		mux.HandleFunc("GET /price/{sku}", func(w http.ResponseWriter, r *http.Request) {
			sleep(5, 30)
			sku := r.PathValue("sku")
			if sku == "ghost" {
				writeJSON(w, 404, map[string]any{"error": "no price for " + sku})
				return
			}
			writeJSON(w, 200, map[string]any{"sku": sku, "cents": 100 + len(sku)*137%900, "currency": "EUR"})
		})
	case "catalog":
		mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
			sleep(2, 15)
			writeJSON(w, 200, []map[string]any{{"sku": "mug", "name": "Mug"}, {"sku": "tee", "name": "T-shirt"}, {"sku": "cap", "name": "Cap"}})
		})
		mux.HandleFunc("GET /items/{sku}", func(w http.ResponseWriter, r *http.Request) {
			sleep(2, 10)
			sku := r.PathValue("sku")
			if sku == "ghost" {
				writeJSON(w, 404, map[string]any{"error": "no such item", "sku": sku})
				return
			}
			writeJSON(w, 200, map[string]any{"sku": sku, "name": strings.ToUpper(sku[:1]) + sku[1:], "stock": rand.IntN(50)})
		})
	case "cart":
		mux.HandleFunc("POST /cart/{user}", func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				SKU string `json:"sku"`
				Qty int    `json:"qty"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				writeJSON(w, 400, map[string]any{"error": err.Error()})
				return
			}
			// One request in ten finds the cart database "down".
			if rand.IntN(10) == 0 {
				sleep(100, 300)
				writeJSON(w, 503, map[string]any{"error": "cart store unavailable"})
				return
			}
			price, err := getJSON(r.Context(), "http://"+Addr("pricing")+"/price/"+req.SKU)
			if err != nil {
				writeJSON(w, 502, map[string]any{"error": err.Error()})
				return
			}
			writeJSON(w, 201, map[string]any{"user": r.PathValue("user"), "sku": req.SKU, "qty": req.Qty, "price": price})
		})
	case "frontend":
		mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
			items, err := getJSON(r.Context(), "http://"+Addr("catalog")+"/items")
			if err != nil {
				http.Error(w, err.Error(), 502)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<html><body><h1>Demo shop</h1><pre>%v</pre></body></html>\n", items)
		})
		mux.HandleFunc("GET /product/{sku}", func(w http.ResponseWriter, r *http.Request) {
			item, err := getJSON(r.Context(), "http://"+Addr("catalog")+"/items/"+r.PathValue("sku"))
			if err != nil {
				writeJSON(w, 404, map[string]any{"error": err.Error()})
				return
			}
			writeJSON(w, 200, item)
		})
		mux.HandleFunc("POST /buy/{sku}", func(w http.ResponseWriter, r *http.Request) {
			body := fmt.Sprintf(`{"sku":%q,"qty":%d}`, r.PathValue("sku"), 1+rand.IntN(3))
			resp, err := client.Post("http://"+Addr("cart")+"/cart/u"+strconv.Itoa(rand.IntN(100)), "application/json", strings.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), 502)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		})
	default:
		return fmt.Errorf("unknown demo service %q", name)
	}
	srv := &http.Server{Addr: Addr(name), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loadgen plays a few shoppers against the frontend.
func loadgen(ctx context.Context) error {
	front := "http://" + Addr("frontend")
	skus := []string{"mug", "tee", "cap", "ghost"}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(150+rand.IntN(250)) * time.Millisecond):
		}
		sku := skus[rand.IntN(len(skus))]
		var resp *http.Response
		var err error
		switch rand.IntN(3) {
		case 0:
			resp, err = client.Get(front + "/")
		case 1:
			resp, err = client.Get(front + "/product/" + sku)
		default:
			resp, err = client.Post(front+"/buy/"+sku, "application/json", nil)
		}
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

func getJSON(ctx context.Context, url string) (any, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return v, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func sleep(minMs, maxMs int) {
	time.Sleep(time.Duration(minMs+rand.IntN(maxMs-minMs+1)) * time.Millisecond)
}
