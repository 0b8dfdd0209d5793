package webhook

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestForbidden(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" allowed; otherwise a word the reason contains
	}{
		{"8.8.8.8", ""},
		{"93.184.216.34", ""},
		{"2606:4700:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", ""},  // 6to4 of 8.8.8.8
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},

		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"0.1.2.3", "this-network"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"198.18.0.1", "benchmarking"},
		{"fec0::1", "site-local"},

		// IPv4-mapped and IPv4-embedding IPv6 forms.
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"::127.0.0.1", "loopback"},
		{"64:ff9b::7f00:1", "loopback"},
		{"64:ff9b::a9fe:a9fe", "link-local"},
		{"64:ff9b:1::1", "NAT64"},
		{"2002:7f00:1::1", "loopback"},
		{"2002:c0a8:101::1", "private"},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		got := forbidden(a)
		switch {
		case tt.want == "" && got != "":
			t.Errorf("forbidden(%s) = %q, want allowed", tt.addr, got)
		case tt.want != "" && !strings.Contains(got, tt.want):
			t.Errorf("forbidden(%s) = %q, want a reason containing %q", tt.addr, got, tt.want)
		}
	}
	if got := forbidden(netip.Addr{}); got == "" {
		t.Errorf("forbidden(invalid) = %q, want refused", got)
	}
}

func TestCheckDial(t *testing.T) {
	tests := []struct {
		address string
		ok      bool
	}{
		{"93.184.216.34:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"127.0.0.1:80", false},
		{"[::1]:8080", false},
		{"[::ffff:127.0.0.1]:80", false},
		{"[fe80::1%lo]:80", false},
		{"10.0.0.1:443", false},
		{"not-an-address", false},
	}
	for _, tt := range tests {
		err := checkDial("tcp", tt.address, nil)
		if tt.ok && err != nil {
			t.Errorf("checkDial(%q) = %v, want nil", tt.address, err)
		}
		if !tt.ok && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("checkDial(%q) = %v, want ErrForbiddenAddress", tt.address, err)
		}
	}
}

func TestLiteralHostProblem(t *testing.T) {
	tests := []struct {
		host    string
		refused bool
	}{
		{"example.com", false},
		{"hooks.example.com", false},
		{"8.8.8.8", false},
		{"localhost.example.com", false},
		{"localhost", true},
		{"LOCALHOST.", true},
		{"api.localhost", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"::ffff:192.168.0.1", true},
		{"169.254.169.254", true},
		{"0.0.0.0", true},
	}
	for _, tt := range tests {
		got := literalHostProblem(tt.host)
		if (got != "") != tt.refused {
			t.Errorf("literalHostProblem(%q) = %q, want refused %v", tt.host, got, tt.refused)
		}
	}
}

func TestBackoff(t *testing.T) {
	s := New(nil, nil, Options{MinBackoff: time.Second, MaxBackoff: 10 * time.Minute})
	d := &deliverer{s: s}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{10, 512 * time.Second},
		{11, 10 * time.Minute},
		{24, 10 * time.Minute},
		{1000, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := d.backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"  service\r\nunavailable\t ", "service unavailable"},
		{"bad \xff byte", "bad ? byte"},
		{"bell\a", "bell"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "..."},
	}
	for _, tt := range tests {
		if got := printable([]byte(tt.in)); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
