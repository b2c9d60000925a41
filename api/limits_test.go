package api

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// serveTCP serves srv the way recsvc does (HTTPServer, optionally behind
// LimitListener) on a loopback port and returns its address.
func serveTCP(t *testing.T, srv *Server, perClient int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go func() { _ = hs.Serve(srv.LimitListener(ln, perClient)) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

func limitsServer(t *testing.T, maxInflight int, bodyTimeout time.Duration) (*Server, string) {
	t.Helper()
	client, prefix := redistest.New(t)
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(200, 3))
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{
		Store: features.NewStore(client, features.Options{Prefix: prefix}), Events: &publisher{}, Feedback: &publisher{},
		Catalog: fixedCatalog{snap}, Models: fixedModel{recommend.DefaultModel()}, Engine: recommend.NewEngine(recommend.Config{}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: time.Minute,
		MaxInflight: maxInflight, BodyTimeout: bodyTimeout,
	})
	return srv, snap.Item(0).ID
}

// slowRequest opens a connection, sends the headers of a request that
// announces a 100-byte body and only the body's first bytes, and leaves
// it hanging.
func slowRequest(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_, err = io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: novarec\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user_id\":")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard, not a speed check
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowlorisDoesNotStarveRequests holds four times -max-inflight
// connections that sent their headers and part of a body and then stall,
// and checks that normal recommend and feedback requests are all served
// meanwhile: a request counts against the bound only once its body is in.
func TestSlowlorisDoesNotStarveRequests(t *testing.T) {
	const maxInflight, slow = 4, 16
	srv, item := limitsServer(t, maxInflight, time.Hour) // the stalled bodies outlive the test
	addr := serveTCP(t, srv, 0)
	for i := range slow {
		path := "/v1/recommend"
		if i%2 == 1 {
			path = "/v1/feedback"
		}
		slowRequest(t, addr, path)
	}
	waitUntil(t, "the stalled requests to be read", func() bool { return value(t, srv.metrics.readingBodies) == slow })

	// As many clients as there are slots: none is ever shed unless the
	// stalled requests hold slots.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxInflight}}
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		wg    sync.WaitGroup
	)
	for w := range maxInflight {
		wg.Go(func() {
			for i := range 50 {
				path, body := "/v1/recommend", `{"user_id":"u`+string(rune('a'+w))+`"}`
				if i%5 == 4 {
					path, body = "/v1/feedback", `{"user_id":"u","item_id":"`+item+`","type":"click"}`
				}
				resp, err := client.Post("http://"+addr+path, "application/json", strings.NewReader(body))
				code := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != maxInflight*40 || codes[http.StatusAccepted] != maxInflight*10 || len(codes) != 2 {
		t.Errorf("answers while %d requests stall in their bodies: %v, want 160×200 and 40×202", slow, codes)
	}
	if got := value(t, srv.metrics.overloaded.WithLabelValues("/v1/recommend")); got != 0 {
		t.Errorf("%v recommend requests shed as overloaded", got)
	}
	if got := value(t, srv.metrics.readingBodies); got != slow {
		t.Errorf("novarec_http_body_reads_inflight = %v, want the %d stalled requests", got, slow)
	}
}

// TestSlowBodyCutOff checks that a body that stops arriving is answered
// 408 with the JSON error body and the connection closed.
func TestSlowBodyCutOff(t *testing.T) {
	srv, _ := limitsServer(t, 4, 50*time.Millisecond)
	addr := serveTCP(t, srv, 0)
	c := slowRequest(t, addr, "/v1/recommend")
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang fails the test rather than blocking it
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), `"code":"body_timeout"`) || !resp.Close {
		t.Errorf("stalled body: %d close=%v %s, want 408 body_timeout and the connection closed", resp.StatusCode, resp.Close, b)
	}
	if got := value(t, srv.metrics.slowBodies); got != 1 {
		t.Errorf("novarec_http_body_timeouts_total = %v, want 1", got)
	}
}

// TestLimitListener caps the connections of one client address.
func TestLimitListener(t *testing.T) {
	srv, _ := limitsServer(t, 0, time.Hour)
	addr := serveTCP(t, srv, 3)
	var conns []net.Conn
	for range 3 {
		conns = append(conns, slowRequest(t, addr, "/v1/recommend"))
	}
	waitUntil(t, "three requests being read", func() bool { return value(t, srv.metrics.readingBodies) == 3 })
	// The fourth connection is accepted and closed at once.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("a fourth connection read %d bytes, %v; want it closed", n, err)
	}
	if got := value(t, srv.metrics.connsRejected); got != 1 {
		t.Errorf("novarec_http_connections_rejected_total = %v, want 1", got)
	}
	// Closing one frees its slot.
	_ = conns[0].Close()
	waitUntil(t, "the closed connection's slot", func() bool {
		resp, err := http.Post("http://"+addr+"/v1/recommend", "application/json", strings.NewReader(`{"user_id":"a"}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
