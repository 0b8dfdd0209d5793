package auth

import (
	"encoding/base64"
	"errors"
	"testing"
)

func TestStatic(t *testing.T) {
	token := NewToken()
	a, err := NewStatic(token)
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"the token", token, true},
		{"empty", "", false},
		{"prefix", token[:len(token)-1], false},
		{"longer", token + "x", false},
		{"other", NewToken(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(t.Context(), tt.token)
			if tt.ok {
				if err != nil {
					t.Fatalf("Authenticate = %v, want nil", err)
				}
				if !p.Admin() || p.Scope() != "" || p.Key == "" {
					t.Errorf("Authenticate = %+v, want an admin of every tenant with a key id", p)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("Authenticate = %+v, %v, want ErrUnauthorized", p, err)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b {
		t.Fatalf("NewToken returned %q twice", a)
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != TokenBytes {
		t.Errorf("NewToken() = %q: decodes to %d bytes, %v; want %d bytes", a, len(raw), err, TokenBytes)
	}
	if err := CheckToken(a); err != nil {
		t.Errorf("CheckToken(NewToken()) = %v", err)
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		token string
		ok    bool
	}{
		{"0123456789abcdef", true},
		{"0123456789abcde", false},
		{"0123456789 abcdef", false},
		{"0123456789abcdef\n", false},
		{"0123456789abcdéf", false},
	}
	for _, tt := range tests {
		if err := CheckToken(tt.token); (err == nil) != tt.ok {
			t.Errorf("CheckToken(%q) = %v, want ok %t", tt.token, err, tt.ok)
		}
	}
	if _, err := NewStatic("short"); err == nil {
		t.Error("NewStatic(short) = nil error, want one")
	}
}

func TestAllows(t *testing.T) {
	perms := []Permission{Read, Submit, Work}
	tests := []struct {
		p    Principal
		want []bool // per perms
	}{
		{Principal{Role: RoleAdmin}, []bool{true, true, true}},
		{Principal{Tenant: "t", Role: RoleSubmit}, []bool{true, true, false}},
		{Principal{Tenant: "t", Role: RoleWorker}, []bool{true, false, true}},
		{Principal{Tenant: "t", Role: RoleRead}, []bool{true, false, false}},
		{Principal{Tenant: "t", Role: "bogus"}, []bool{false, false, false}},
	}
	for _, tt := range tests {
		for i, perm := range perms {
			if got := tt.p.Allows(perm); got != tt.want[i] {
				t.Errorf("%+v.Allows(%d) = %t, want %t", tt.p, perm, got, tt.want[i])
			}
		}
	}
	if s := (Principal{Tenant: "t", Role: RoleAdmin}).Scope(); s != "t" {
		t.Errorf("Scope of a tenant's admin = %q, want t", s)
	}
}
