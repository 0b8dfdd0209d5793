package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/client"
)

// app holds what the commands of one run share: the global flags and the
// HTTP client of the SDK, whose idle connections are closed at the end.
type app struct {
	server    string // --server
	token     string // --token
	tokenFile string // --token-file
	json      bool   // --json

	serverURL string // the server the client talks to, once resolved
	noToken   bool   // the client has no token
	hc        *http.Client
}

// addFlags adds the global flags to root.
func (a *app) addFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&a.server, "server", "", "URL of the Gantry server (default $"+client.EnvServer+", else "+client.DefaultServer+")")
	f.StringVar(&a.token, "token", "", "API token (default $"+client.EnvToken+", else the content of the token file)")
	f.StringVar(&a.tokenFile, "token-file", "", "file holding the API token (default "+client.DefaultTokenFile+" if it exists)")
	f.BoolVar(&a.json, "json", false, "print JSON (the API's objects) instead of tables")
}

// noClientFlags refuses the global client flags on the commands that run
// a server rather than talk to one.
func noClientFlags(cmd *cobra.Command) error {
	for _, name := range []string{"server", "token", "token-file", "json"} {
		if cmd.Flags().Changed(name) {
			hint := ""
			if name == "token" || name == "token-file" {
				hint = " (the server's admin token comes from GANTRY_ADMIN_TOKEN or <data-dir>/admin.token)"
			}
			return usagef("--%s does not apply to %s%s", name, cmd.CommandPath(), hint)
		}
	}
	return nil
}

// httpClient returns the HTTP client of the run's SDK clients.
func (a *app) httpClient() *http.Client {
	if a.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		a.hc = &http.Client{Transport: t}
	}
	return a.hc
}

// close releases the idle connections of the run's HTTP client.
func (a *app) close() {
	if a.hc != nil {
		a.hc.CloseIdleConnections()
	}
}

// client returns an SDK client configured as client.FromEnv does, with the
// flags taking precedence: the server is --server, else GANTRY_SERVER,
// else the default; the token is --token, else GANTRY_TOKEN, else the
// content of --token-file (which must exist), else that of the default
// token file if it exists.
func (a *app) client() (*client.Client, error) {
	server := a.server
	if server == "" {
		server = os.Getenv(client.EnvServer)
	}
	if server == "" {
		server = client.DefaultServer
	}
	opts := []client.Option{client.WithHTTPClient(a.httpClient()), client.WithUserAgent("gantry-cli/" + Version())}
	token := a.token
	if token == "" {
		token = os.Getenv(client.EnvToken)
	}
	switch {
	case token != "":
		opts = append(opts, client.WithToken(token))
	case a.tokenFile != "":
		opts = append(opts, client.WithTokenFile(a.tokenFile))
	default:
		b, err := os.ReadFile(client.DefaultTokenFile)
		switch {
		case err == nil:
			opts = append(opts, client.WithToken(strings.TrimSpace(string(b))))
		case errors.Is(err, os.ErrNotExist):
			a.noToken = true
		default:
			return nil, fmt.Errorf("token file: %w", err)
		}
	}
	c, err := client.New(server, opts...)
	if err != nil {
		return nil, &usageError{err}
	}
	a.serverURL = c.Server()
	return c, nil
}

// describe phrases err for the user: a problem answered by the server
// with its detail, status and field, an unreachable server with a hint.
func (a *app) describe(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		msg := ce.Detail
		if msg == "" {
			msg = ce.Title
		}
		title := ce.Title
		if title == "" {
			title = http.StatusText(ce.Status)
		}
		msg += fmt.Sprintf(" (%d %s)", ce.Status, title)
		if ce.Field != "" {
			msg += "\n  field: " + ce.Field
		}
		if ce.Status == http.StatusUnauthorized {
			if a.noToken {
				msg += "\n  no token was found: pass --token, set " + client.EnvToken + ", or pass --token-file (a local server writes its token to <data-dir>/admin.token)"
			} else {
				msg += "\n  the token was refused: check --token, " + client.EnvToken + " or the token file"
			}
		}
		return msg
	}
	var op *net.OpError
	if a.serverURL != "" && errors.As(err, &op) && op.Op == "dial" { // a client of the server failed to dial it
		return fmt.Sprintf("cannot reach the Gantry server at %s: %v\n  is 'gantry server' running? Set --server or %s to its URL", a.serverURL, op.Err, client.EnvServer)
	}
	return err.Error()
}
