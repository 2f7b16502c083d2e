package dns

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
)

// TestAppendIP checks the address renderers against netip's.
func TestAppendIP(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ips [][16]byte
	for _, s := range []string{"::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:1:0:0:1", "2001:0:0:1:0:0:0:1",
		"fe80::1:0:0:0", "0:0:1::", "::ffff:10.1.2.3", "::ffff:0:0", "::fffe:10.1.2.3", "64:ff9b::10.1.2.3"} {
		ips = append(ips, netip.MustParseAddr(s).As16())
	}
	for range 100000 {
		var ip [16]byte
		for i := range ip {
			// Mostly zeros, so that runs of zero groups come in every shape.
			switch rng.IntN(4) {
			case 0:
				ip[i] = byte(rng.Uint32())
			case 1:
				ip[i] = byte(rng.IntN(16))
			}
		}
		if rng.IntN(8) == 0 {
			ip[10], ip[11] = 0xff, 0xff
		}
		ips = append(ips, ip)
	}
	for _, ip := range ips {
		want := netip.AddrFrom16(ip).String()
		if got := string(appendIPv6([]byte("x"), &ip)); got != "x"+want {
			t.Fatalf("%x: %q, want %q", ip, got, want)
		}
		want = netip.AddrFrom4([4]byte(ip[12:])).String()
		if got := string(appendIPv4([]byte("x"), ip[12:])); got != "x"+want {
			t.Fatalf("%x: %q, want %q", ip[12:], got, want)
		}
	}
}

// TestAppendUint checks the decimal renderer against strconv's.
func TestAppendUint(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := []uint64{0, 1, 9, 10, 99, 100, 65535, 1<<32 - 1, 1<<64 - 1, 10000000000000000000}
	for range 100000 {
		xs = append(xs, rng.Uint64()>>rng.IntN(64))
	}
	for _, x := range xs {
		if got, want := string(appendUint([]byte("x"), x)), strconv.FormatUint(x, 10); got != "x"+want {
			t.Fatalf("%d: %q", x, got)
		}
	}
}

// TestAppendFlags checks the flag table against the flags one by one.
func TestAppendFlags(t *testing.T) {
	for f := range 1 << 16 {
		var want []byte
		for _, fl := range &headerFlags {
			if uint16(f)&fl.bit != 0 {
				want = append(want, fl.name...)
			}
		}
		if got := appendFlags([]byte("x"), uint16(f)); string(got) != "x"+string(want) {
			t.Fatalf("%#04x: %q, want %q", f, got, want)
		}
	}
}

// readNameRef is readName as first written, label by label: the
// reference for TestReadName.
func readNameRef(msg []byte, off int, dst []byte, mode int) ([]byte, int, error) {
	limit := off
	end := -1
	wire := 0
	jumps := 0
	wrote := false
	for {
		if off >= len(msg) {
			return dst, 0, errShort
		}
		c := msg[off]
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				if mode != nameSkip && !wrote {
					dst = append(dst, '.')
				}
				return dst, end, nil
			}
			l := int(c)
			if off+1+l > len(msg) {
				return dst, 0, errShort
			}
			wire += 1 + l
			if wire+1 > maxNameWire {
				return dst, 0, errNameLong
			}
			if mode != nameSkip {
				for _, c := range msg[off+1 : off+1+l] {
					switch {
					case c == '.' || c == ';' || c == '\\' || c == '"' || c == '(' || c == ')' || c == '@' || c == '$':
						dst = append(dst, '\\', c)
					case c < 0x21 || c > 0x7e:
						dst = append(dst, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
					default:
						dst = append(dst, c)
					}
				}
				dst = append(dst, '.')
				wrote = true
			}
			off += 1 + l
		case 0xC0:
			if off+1 >= len(msg) {
				return dst, 0, errShort
			}
			p := int(c&0x3F)<<8 | int(msg[off+1])
			if p >= limit || p < headerLen {
				return dst, 0, errPointer
			}
			if jumps++; jumps > maxJumps {
				return dst, 0, errPointer
			}
			if end < 0 {
				end = off + 2
			}
			limit, off = p, p
		default:
			return dst, 0, errLabelType
		}
	}
}

// TestReadName compares readName with readNameRef on random messages made
// of labels (some with bytes to escape, some long), pointers, roots and
// noise.
func TestReadName(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 40000 {
		msg := make([]byte, headerLen)
		for len(msg) < 300 {
			switch rng.IntN(8) {
			case 0:
				msg = append(msg, 0)
			case 1:
				p := rng.IntN(len(msg) + 2)
				msg = append(msg, 0xC0|byte(p>>8), byte(p))
			case 2:
				msg = append(msg, byte(rng.Uint32()))
			default:
				l := 1 + rng.IntN(8)
				if rng.IntN(20) == 0 {
					l = 40 + rng.IntN(30)
				}
				msg = append(msg, byte(l))
				for range l {
					c := byte('a' + rng.IntN(26))
					if rng.IntN(30) == 0 {
						c = byte(rng.Uint32())
					}
					msg = append(msg, c)
				}
			}
		}
		msg = msg[:headerLen+rng.IntN(len(msg)-headerLen+1)]
		for off := headerLen; off < len(msg); off += 1 + rng.IntN(4) {
			for _, mode := range []int{nameSkip, nameAsIs} {
				got, gn, gerr := readName(msg, off, []byte("x"), mode)
				want, wn, werr := readNameRef(msg, off, []byte("x"), mode)
				if gn != wn || gerr != werr || gerr == nil && string(got) != string(want) {
					t.Fatalf("%x at %d mode %d: %q %d %v, want %q %d %v", msg, off, mode, got, gn, gerr, want, wn, werr)
				}
			}
		}
	}
}
