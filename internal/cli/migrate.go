package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/internal/store/postgres"
)

func newMigrateCommand(_ *app) *cobra.Command {
	var url, schema string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the pending migrations of a PostgreSQL database and exit",
		Long: "Migrate applies the migrations of Gantry's PostgreSQL schema that the database\n" +
			"at --database-url (or $" + EnvDatabaseURL + ") lacks, creating --schema if needed,\n" +
			"and exits. It is idempotent: on an up-to-date database it changes nothing.\n" +
			"Servers also migrate on start; running migrate first, as a deploy step,\n" +
			"applies a release's migrations once and fails early if the database refuses\n" +
			"them. Processes migrating at once are serialized.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := noClientFlags(cmd); err != nil {
				return err
			}
			if url == "" {
				url = os.Getenv(EnvDatabaseURL)
			}
			if url == "" {
				return usagef("gantry migrate needs --database-url or $%s", EnvDatabaseURL)
			}
			if err := checkSchema(schema); err != nil {
				return err
			}
			if err := postgres.Migrate(cmd.Context(), url, schema); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Schema %s is up to date.\n", schema)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "database-url", "", "URL of the PostgreSQL database (default $"+EnvDatabaseURL+")")
	f.StringVar(&schema, "schema", "public", "PostgreSQL schema of Gantry's tables")
	return cmd
}
