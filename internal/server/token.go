package server

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/gantryhq/gantry/internal/auth"
)

// readTokenFile reads the admin token file. It refuses a file that other
// users may read or write (the token may have leaked: the operator should
// fix the mode or delete the file to get a new token) rather than fix its
// mode silently.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("server: read admin token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("server: read admin token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("server: admin token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("server: admin token file %s has mode %04o: other users may read it; "+
			"run 'chmod 600 %s' if it has not leaked, or delete it to generate a new token", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return "", fmt.Errorf("server: read admin token %s: %w", path, err)
	}
	token := strings.TrimSpace(string(b))
	if err := auth.CheckToken(token); err != nil {
		return "", fmt.Errorf("server: admin token file %s: %w", path, err)
	}
	return token, nil
}

// createTokenFile writes a new admin token to path, mode 0600. If another
// process created the file first, its token is used.
func createTokenFile(path string) (string, error) {
	token := auth.NewToken()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readTokenFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("server: write admin token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("server: write admin token %s: %w", path, err)
	}
	return token, nil
}
