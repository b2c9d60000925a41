package api

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Connection limits of HTTPServer. A client gets ReadHeaderTimeout to send
// its request line and headers (at most MaxHeaderBytes), then
// Config.BodyTimeout (plus time for a long body) to send the body; an idle
// keep-alive connection is closed after IdleTimeout. readTimeout and
// writeTimeout are backstops for what readBody does not cover (a body sent
// to a route that reads none, a client that does not read its answer);
// they are long because PUT /v1/items may carry 32 MiB.
const (
	ReadHeaderTimeout = 5 * time.Second
	IdleTimeout       = time.Minute
	MaxHeaderBytes    = 64 << 10
	readTimeout       = 2 * time.Minute
	writeTimeout      = 2 * time.Minute
)

// HTTPServer returns the http.Server recsvc serves s with, configured
// against slow and abusive clients (see the constants above).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// net/http logs TLS handshake and similar client errors here;
		// they are the clients' problem, so debug level.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// LimitListener wraps ln so that one client address (IP) holds at most
// perClient connections at once; a connection beyond that is closed as
// soon as it is accepted and counted in
// novarec_http_connections_rejected_total. It bounds the file descriptors
// and goroutines one client can pin with idle or trickling connections.
// Behind a proxy or load balancer that does not preserve client addresses
// every connection comes from a few addresses: leave it off there
// (perClient <= 0 returns ln unchanged).
func (s *Server) LimitListener(ln net.Listener, perClient int) net.Listener {
	if perClient <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: perClient, open: map[string]int{}, rejected: s.metrics.connsRejected.Inc}
}

type limitListener struct {
	net.Listener
	max      int
	rejected func()

	mu   sync.Mutex
	open map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			host = c.RemoteAddr().String()
		}
		l.mu.Lock()
		if l.open[host] >= l.max {
			l.mu.Unlock()
			// Counted before the close, so whoever sees the connection
			// closed also sees it counted.
			l.rejected()
			_ = c.Close()
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &limitConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.open[host]--; l.open[host] <= 0 {
				delete(l.open, host)
			}
			l.mu.Unlock()
		}}, nil
	}
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
