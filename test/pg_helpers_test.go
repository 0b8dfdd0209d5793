package test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
)

// pgNeed returns the URL of the test database; see pgtest.URL.
func pgNeed(t testing.TB) string {
	t.Helper()
	return pgtest.URL(t)
}

// pgSchema returns a fresh schema, dropped when the test ends; see
// pgtest.Schema.
func pgSchema(t testing.TB, dbURL string) string {
	t.Helper()
	return pgtest.Schema(t, dbURL)
}

// pgConn opens a direct connection to the test database, closed when the
// test ends.
func pgConn(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tcpProxy is a TCP proxy whose link can be cut and restored, and whose
// target can change: in front of PostgreSQL it makes the database
// unreachable for a server without stopping it; in front of a server it
// plays a load balancer that moves clients to another server.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startPGProxy starts a proxy on a loopback port forwarding to the host of
// dbURL, and returns it with dbURL pointed at it. It stops when the test
// ends.
func startPGProxy(t testing.TB, dbURL string) (*tcpProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		t.Fatalf("the test database's URL must be a postgres:// URL with a host to be proxied, not %q", dbURL)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := startTCPProxy(t, target)
	u.Host = p.Addr()
	return p, u.String()
}

// startTCPProxy starts a proxy on a loopback port forwarding to target
// (host:port). It stops when the test ends.
func startTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's address (host:port).
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// SetTarget forwards the connections made from now on to target.
func (p *tcpProxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close() // the database is "unreachable"
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

// forward links c to a new connection to the target until either ends.
func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	d, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = d.Close()
		return
	}
	p.conns[d] = struct{}{}
	p.mu.Unlock()
	defer p.drop(d)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(d, c)
	go pipe(c, d)
	<-done // one side ended: closing both ends the other copy
	p.drop(c)
	p.drop(d)
	<-done
}

// drop closes c and forgets it.
func (p *tcpProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Restore forwards new connections again.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// close stops the proxy and waits for its goroutines.
func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
