// Package gantry holds the types every part of Gantry shares with its users:
// the job [State] machine, the [Job] a [Handler] works on, and the errors a
// handler returns to steer retries ([Permanent], [RetryAfter]).
//
// The package has no dependencies beyond the standard library, so the SDK
// (package client), the worker runtime (package worker) and embedded use
// (package embedded) can all import it.
package gantry
