// Command gantry is Gantry's single binary: the server (gantry server), a
// worker running the built-in handlers (gantry worker), the command line
// client (gantry submit, jobs, batches, watch, queues, workers) and a demo
// (gantry demo). Run 'gantry --help' for the commands.
package main

import (
	"os"

	"github.com/gantryhq/gantry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
