// Package job is Gantry's data model below the public API: the submitted
// [Spec] and its validation, the stored [Job] record with its attempts, the
// [Batch], the [Worker] and the [Event] every transition emits. It depends
// on nothing but the standard library, github.com/google/uuid and the root
// package gantry, so every layer above can share it.
package job
