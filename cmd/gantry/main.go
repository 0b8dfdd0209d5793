// Command gantry is Gantry's single binary. Run 'gantry demo' to see it
// work, 'gantry --help' for the rest.
package main

import (
	"os"

	"github.com/gantryhq/gantry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
