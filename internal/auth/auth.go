// Package auth says who is calling the API: an [Authenticator] turns a
// bearer token into a [Principal] (a tenant and a role), and the principal
// says what it may do ([Principal.Allows]) and which tenant's objects it
// sees ([Principal.Scope]).
//
// Until API keys exist there is one credential, the admin token
// ([Static]). Keys, roles per tenant and OIDC plug in as other
// Authenticators.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrUnauthorized is returned by [Authenticator.Authenticate] for a
// missing, unknown or revoked token.
var ErrUnauthorized = errors.New("auth: invalid credentials")

// Roles a principal may have (API.md: admin over all tenants; per tenant
// submit, read and worker).
const (
	// RoleAdmin may do everything, in every tenant.
	RoleAdmin = "admin"
	// RoleSubmit may submit jobs and read its tenant's objects.
	RoleSubmit = "submit"
	// RoleRead may only read its tenant's objects.
	RoleRead = "read"
	// RoleWorker may speak the worker protocol and read its tenant's
	// objects.
	RoleWorker = "worker"
)

// Permission is a class of API operations.
type Permission int

// Permissions checked by the API.
const (
	// Read: get and list jobs, batches, workers, queues, webhooks and
	// follow events.
	Read Permission = iota
	// Submit: submit, cancel, retry and delete jobs; manage batches,
	// webhooks and queue pauses.
	Submit
	// Work: register workers, lease, heartbeat, report, drain and leave.
	Work
)

// Principal is an authenticated caller.
type Principal struct {
	// Tenant is the tenant whose objects the principal sees; "" means
	// every tenant (admin).
	Tenant string
	// Role is one of the Role constants.
	Role string
	// Key identifies the credential (never the secret itself), for
	// per-key limits and logs.
	Key string
}

// Admin reports whether p acts over every tenant.
func (p Principal) Admin() bool { return p.Role == RoleAdmin && p.Tenant == "" }

// Scope returns the tenant to pass to store and engine calls: p's tenant,
// or "" (every tenant) for an admin.
func (p Principal) Scope() string {
	if p.Admin() {
		return ""
	}
	return p.Tenant
}

// Allows reports whether p's role grants perm.
func (p Principal) Allows(perm Permission) bool {
	switch p.Role {
	case RoleAdmin:
		return true
	case RoleSubmit:
		return perm == Read || perm == Submit
	case RoleWorker:
		return perm == Read || perm == Work
	case RoleRead:
		return perm == Read
	}
	return false
}

// Authenticator checks a bearer token.
type Authenticator interface {
	// Authenticate returns the principal of token, or an error wrapping
	// ErrUnauthorized when the token is not valid. Other errors (a key
	// store that cannot be reached) are the caller's to report as such.
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// Static is an [Authenticator] with one admin token.
type Static struct {
	sum [sha256.Size]byte
	key string
}

var _ Authenticator = (*Static)(nil)

// NewStatic returns an authenticator that accepts only token, as the admin
// of every tenant. The token must be at least 16 bytes long.
func NewStatic(token string) (*Static, error) {
	if err := CheckToken(token); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	return &Static{sum: sum, key: "admin:" + hex.EncodeToString(sum[:4])}, nil
}

// Authenticate implements [Authenticator] in constant time (hashing both
// tokens first makes the comparison independent of their lengths too).
func (s *Static) Authenticate(_ context.Context, token string) (Principal, error) {
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], s.sum[:]) != 1 {
		return Principal{}, ErrUnauthorized
	}
	return Principal{Role: RoleAdmin, Key: s.key}, nil
}

// TokenBytes is the number of random bytes in a generated token.
const TokenBytes = 32

// NewToken returns a new random token: [TokenBytes] random bytes in
// unpadded base64url (43 characters).
func NewToken() string {
	b := make([]byte, TokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CheckToken reports whether token is acceptable as a configured secret:
// 16 to 512 printable ASCII characters without spaces.
func CheckToken(token string) error {
	if len(token) < 16 || len(token) > 512 {
		return fmt.Errorf("auth: a token must be 16 to 512 characters long, not %d", len(token))
	}
	if strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return errors.New("auth: a token must be printable ASCII without spaces")
	}
	return nil
}
