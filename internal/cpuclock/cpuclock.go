// Package cpuclock reads the process's CPU time, for benchmarks that report
// CPU per operation besides wall time: on a machine other jobs share, wall
// time stretches with their load while the process's own CPU time barely
// does, and a benchmark whose work is spread over goroutines (RunParallel,
// a client's own goroutines) is only measured whole by the process's CPU.
package cpuclock

import (
	"syscall"
	"time"
)

// Now is the CPU time the process has used so far, user and system, all
// threads; 0 if the system does not say.
func Now() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
