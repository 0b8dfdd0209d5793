package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/wire"
)

func newReservationsCommand(a *app) *cobra.Command {
	return group("reservations", "List, inspect, acquire, renew and release reservations (named leases)",
		newReservationsListCommand(a),
		newReservationGetCommand(a),
		newReservationAcquireCommand(a),
		newReservationRenewCommand(a),
		newReservationReleaseCommand(a),
	)
}

// defaultHolder is the default --holder: this host and process.
func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

func newReservationsListCommand(a *app) *cobra.Command {
	var (
		page   listFlags
		tenant string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List reservations by tenant and name, with their holders",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListReservationsPage(cmd.Context(), client.ListReservationsOptions{Tenant: tenant, Limit: page.Limit, Cursor: page.Cursor})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.json {
				return writeJSON(w, wirePage(p.Items, p.NextCursor, func(r *client.Reservation) wire.Reservation { return wireReservation(r, false) }))
			}
			if len(p.Items) == 0 {
				return writeNone(w, "reservations")
			}
			t := newTable(w, "NAME", "TENANT", "HOLDER", "TOKEN", "ACQUIRED", "EXPIRES")
			for _, r := range p.Items {
				token := "-"
				if r.Holder != "" {
					token = fmt.Sprint(r.Token)
				}
				t.row(r.Name, r.Tenant, orDash(r.Holder), token, stamp(r.AcquiredAt), stamp(r.ExpiresAt))
			}
			if err := t.flush(); err != nil {
				return err
			}
			return writeMore(w, p.NextCursor, "reservations")
		},
	}
	page.add(cmd, "reservations")
	cmd.Flags().StringVar(&tenant, "tenant", "", "list only this tenant's reservations (admin tokens only; default all)")
	return cmd
}

func newReservationGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a reservation's holder and its latest grants",
		Args:  oneArg("a reservation name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.GetReservation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), wireReservation(r, true))
			}
			return writeReservationDetails(cmd.OutOrStdout(), r)
		},
	}
}

// writeReservationDetails prints a reservation, then its history.
func writeReservationDetails(w io.Writer, r *client.Reservation) error {
	t := newTable(w, "Name:", r.Name)
	t.row("Tenant:", r.Tenant)
	if r.Holder == "" {
		t.row("Holder:", "none (free)")
	} else {
		t.row("Holder:", r.Holder)
		t.row("Token:", fmt.Sprint(r.Token))
		t.row("Acquired:", stamp(r.AcquiredAt))
		t.row("Expires:", stamp(r.ExpiresAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(r.History) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "\nHistory (newest first):"); err != nil {
		return err
	}
	h := newTable(w, "TOKEN", "HOLDER", "ACQUIRED", "ENDED", "AT")
	for _, e := range r.History {
		h.row(fmt.Sprint(e.Token), e.Holder, stamp(e.AcquiredAt), e.Ended, stamp(e.EndedAt))
	}
	return h.flush()
}

// reservationFlags are the flags of acquire, renew and release.
type reservationFlags struct {
	holder string
	token  int64
	ttl    time.Duration
}

func (f *reservationFlags) addHolder(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.holder, "holder", "", "who holds the reservation (default <hostname>:<pid> of this command)")
}

func (f *reservationFlags) addToken(cmd *cobra.Command) {
	// Not --token: that global flag is the API token.
	cmd.Flags().Int64Var(&f.token, "lease-token", 0, "the reservation's token, printed by acquire (required)")
}

func (f *reservationFlags) addTTL(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.ttl, "ttl", 30*time.Second, "how long the reservation lasts without a renewal (1s to 24h)")
}

func (f *reservationFlags) check(cmd *cobra.Command, needToken, needTTL bool) error {
	if f.holder == "" {
		f.holder = defaultHolder()
	}
	if needToken && f.token <= 0 {
		return usagef("%s needs --lease-token, the token printed by acquire", cmd.CommandPath())
	}
	if needTTL && (f.ttl < time.Second || f.ttl > 24*time.Hour) {
		return usagef("--ttl must be from 1s to 24h, not %v", f.ttl)
	}
	return nil
}

func newReservationAcquireCommand(a *app) *cobra.Command {
	var f reservationFlags
	cmd := &cobra.Command{
		Use:   "acquire NAME",
		Short: "Acquire a reservation and print its token (fails if another holder holds it)",
		Long: "Acquire a reservation for --ttl and print its fencing token on standard output\n" +
			"(the grant is described on standard error). Acquiring again with the same --holder\n" +
			"extends it and keeps the token. Renew it with 'gantry reservations renew' and free it\n" +
			"with 'gantry reservations release', passing the same --holder and the token as\n" +
			"--lease-token.",
		Args: oneArg("a reservation name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd, false, true); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.AcquireReservation(cmd.Context(), args[0], f.holder, f.ttl)
			if err != nil {
				return err
			}
			return writeGrant(a, cmd, r, "acquired")
		},
	}
	f.addHolder(cmd)
	f.addTTL(cmd)
	return cmd
}

func newReservationRenewCommand(a *app) *cobra.Command {
	var f reservationFlags
	cmd := &cobra.Command{
		Use:   "renew NAME",
		Short: "Renew a held reservation for --ttl from now",
		Args:  oneArg("a reservation name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd, true, true); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.RenewReservation(cmd.Context(), args[0], f.holder, f.token, f.ttl)
			if err != nil {
				return err
			}
			return writeGrant(a, cmd, r, "renewed")
		},
	}
	f.addHolder(cmd)
	f.addToken(cmd)
	f.addTTL(cmd)
	return cmd
}

func newReservationReleaseCommand(a *app) *cobra.Command {
	var f reservationFlags
	cmd := &cobra.Command{
		Use:   "release NAME",
		Short: "Release a held reservation, so that another holder may acquire it at once",
		Args:  oneArg("a reservation name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd, true, false); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.ReleaseReservation(cmd.Context(), args[0], f.holder, f.token); err != nil {
				return err
			}
			if a.json {
				return nil // 204: nothing to print
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Reservation %s released (token %d).\n", args[0], f.token)
			return err
		},
	}
	f.addHolder(cmd)
	f.addToken(cmd)
	return cmd
}

// writeGrant prints an acquired or renewed reservation: the token on
// standard output (the grant object with --json), the grant on standard
// error.
func writeGrant(a *app, cmd *cobra.Command, r *client.Reservation, what string) error {
	if a.json {
		return writeJSON(cmd.OutOrStdout(), wire.Grant{Name: r.Name, Tenant: r.Tenant, Holder: r.Holder, Token: r.Token,
			AcquiredAt: wire.T(r.AcquiredAt), ExpiresAt: wire.T(r.ExpiresAt), TTLSeconds: wire.S(r.TTL)})
	}
	if _, err := fmt.Fprintln(cmd.OutOrStdout(), r.Token); err != nil {
		return err
	}
	_, err := fmt.Fprintf(cmd.ErrOrStderr(), "Reservation %s (tenant %s) %s by %s with token %d for %v, until %s.\n",
		r.Name, r.Tenant, what, r.Holder, r.Token, r.TTL, stamp(r.ExpiresAt))
	return err
}

// wireReservation converts a reservation to the API's object.
func wireReservation(r *client.Reservation, withHistory bool) wire.Reservation {
	w := wire.Reservation{Name: r.Name, Tenant: r.Tenant}
	if r.Holder != "" {
		h, tok := r.Holder, r.Token
		w.Holder, w.Token = &h, &tok
		w.AcquiredAt, w.ExpiresAt = wire.T(r.AcquiredAt), wire.T(r.ExpiresAt)
	}
	if withHistory {
		w.History = make([]wire.ReservationEntry, len(r.History))
		for i, e := range r.History {
			w.History[i] = wire.ReservationEntry{Holder: e.Holder, Token: e.Token, AcquiredAt: wire.T(e.AcquiredAt),
				EndedAt: wire.T(e.EndedAt), Ended: e.Ended}
		}
	}
	return w
}
