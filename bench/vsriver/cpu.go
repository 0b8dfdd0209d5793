package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is a reading of the CPU time used so far: by this process
// (the system under test's Go side and the benchmark's own goroutines) and
// by the whole machine (busy and idle, from /proc/stat). Where /proc/stat
// is missing only the process's share is known.
type cpuSample struct {
	proc       time.Duration
	busy, idle time.Duration
	machine    bool
}

// clockTick is the unit of /proc/stat (USER_HZ), 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

func readCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.proc = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return s
	}
	// cpu user nice system idle iowait irq softirq steal ...
	fields := strings.Fields(sc.Text())
	if len(fields) < 8 || fields[0] != "cpu" {
		return s
	}
	var v [7]int64
	for i := range v {
		n, err := strconv.ParseInt(fields[i+1], 10, 64)
		if err != nil {
			return s
		}
		v[i] = n
	}
	s.busy = time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * clockTick
	s.idle = time.Duration(v[3]+v[4]) * clockTick
	s.machine = true
	return s
}

// cpuUse is the CPU spent between two samples while n jobs were worked.
type cpuUse struct {
	proc, rest, idle time.Duration
	machine          bool
	jobs             int64
}

func cpuBetween(a, b cpuSample, jobs int64) cpuUse {
	u := cpuUse{proc: b.proc - a.proc, jobs: jobs, machine: a.machine && b.machine}
	if u.machine {
		u.rest = max(0, b.busy-a.busy-u.proc)
		u.idle = b.idle - a.idle
	}
	return u
}

// String gives the CPU per 1,000 jobs: this process's, the rest of the
// machine's (on a machine running only the benchmark, mostly PostgreSQL)
// and the idle share.
func (u cpuUse) String() string {
	if u.jobs <= 0 {
		return ""
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) * 1000 / float64(u.jobs) }
	if !u.machine {
		return fmt.Sprintf("CPU per 1k jobs: process %.0f ms", per(u.proc))
	}
	total := u.proc + u.rest + u.idle
	idle := 0.0
	if total > 0 {
		idle = 100 * float64(u.idle) / float64(total)
	}
	return fmt.Sprintf("CPU per 1k jobs: process %.0f ms, rest of machine %.0f ms, idle %.0f%%", per(u.proc), per(u.rest), idle)
}
