package capture

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/tcp"
)

func TestSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	c, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.URL.Path) })}
	go srv.Serve(ln)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	go func() {
		time.Sleep(100 * time.Millisecond)
		for i := 0; i < 3; i++ {
			resp, err := http.Get(fmt.Sprintf("http://%s/x%d", ln.Addr(), i))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		time.Sleep(200 * time.Millisecond)
		c.Close()
	}()
	c.Run(func(s *tcp.Segment) {
		if s.Local.Port() == port || s.Remote.Port() == port {
			t.Logf("%s %v %v->%v seq=%d flags=%x len=%d cookie=%d cg=%d %q", s.Time.Format("15:04:05.000000"), s.Dir, s.Local, s.Remote, s.Seq, s.Flags, len(s.Payload), s.Cookie, s.CgroupID, string(s.Payload[:min(40, len(s.Payload))]))
		}
	}, func(time.Time) {}, 100*time.Millisecond)
	t.Log(c.Counters())
}
