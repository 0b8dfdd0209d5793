package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress is wrapped by the delivery error of a webhook whose
// host resolved to an internal address (loopback, private, link-local and
// the like) while the service does not allow those (RELIABILITY.md rule 14).
var ErrForbiddenAddress = errors.New("webhook: internal address refused")

// forbiddenPrefixes are the ranges, besides those netip classifies, that
// must not be reached: they are not globally routable, and several reach
// the server's own network.
var forbiddenPrefixes = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (shared)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
}

// Prefixes of IPv6 addresses that carry an IPv4 address, and where in the
// address it sits: a NAT64 or 6to4 gateway would forward to that IPv4
// address, so it is checked as well.
var (
	nat64Prefix      = netip.MustParsePrefix("64:ff9b::/96")
	nat64LocalPrefix = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFourPrefix  = netip.MustParsePrefix("2002::/16")
	compatPrefix     = netip.MustParsePrefix("::/96") // IPv4-compatible (deprecated)
)

// forbidden says why a may not be dialed ("" if it may): it is checked as
// dialed, IPv4-mapped and IPv4-embedding IPv6 forms included.
func forbidden(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	a = a.WithZone("")
	if a.Is4In6() {
		return forbidden(a.Unmap())
	}
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "broadcast"
	}
	for _, f := range forbiddenPrefixes {
		if f.p.Contains(a) {
			return f.reason
		}
	}
	if a.Is6() {
		b := a.As16()
		var v4 [4]byte
		embedded := true
		switch {
		case nat64Prefix.Contains(a), compatPrefix.Contains(a):
			copy(v4[:], b[12:16])
		case nat64LocalPrefix.Contains(a):
			// RFC 8215 leaves the layout to the operator: be strict.
			return "local-use NAT64"
		case sixToFourPrefix.Contains(a):
			copy(v4[:], b[2:6])
		default:
			embedded = false
		}
		if embedded {
			if r := forbidden(netip.AddrFrom4(v4)); r != "" {
				return r + " (embedded in " + a.String() + ")"
			}
		}
	}
	return ""
}

// checkDial is the dialer's Control function: it runs after name
// resolution, on the address actually dialed, for every connection
// (redirects are not followed anyway), so DNS rebinding cannot slip an
// internal address past it.
func checkDial(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialed address %q", ErrForbiddenAddress, address)
	}
	if r := forbidden(ap.Addr()); r != "" {
		return fmt.Errorf("%w: %s is a %s address (internal webhook targets are not allowed on this server)", ErrForbiddenAddress, ap.Addr(), r)
	}
	return nil
}

// literalHostProblem says why host, as written in a URL, names an internal
// target ("" if it does not, or if only resolving it could tell).
func literalHostProblem(host string) string {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "is localhost"
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return ""
	}
	if r := forbidden(a); r != "" {
		return fmt.Sprintf("is a %s address", r)
	}
	return ""
}

// newClient returns the HTTP client deliveries use: no proxy (a proxy
// would dial the target on our behalf, unchecked), no redirects, a timeout
// per delivery, and unless allowPrivate a dialer that refuses internal
// addresses.
func newClient(timeout time.Duration, allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = checkDial
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
