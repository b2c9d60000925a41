package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/novarec/novarec/trainer"
)

// defaultMergeEvery is the commit interval of `simulate` and `replay` with
// replicas, in events of the stream (trainer.Replicated), whatever the
// number of replicas, as the service commits by time: a quarter of what
// one 5-second commit interval carries at today's traffic (~8,000 events).
const defaultMergeEvery = 2000

// parseReplicas reads a policy name of the form NAME/N: the policy NAME
// learned by N partitioned trainer replicas (trainer.Replicated). ok is
// false for a plain name.
func parseReplicas(name string) (base string, n int, ok bool, err error) {
	base, count, found := strings.Cut(name, "/")
	if !found {
		return name, 0, false, nil
	}
	n, err = strconv.Atoi(count)
	if err != nil || n < 1 || n > trainer.ReplicaPartitions {
		return "", 0, false, fmt.Errorf("policy %q: replicas after / must be 1..%d", name, trainer.ReplicaPartitions)
	}
	return base, n, true, nil
}

// replicated builds name's policy as partitioned replicas when it names
// some (NAME/N), committing every `every` events a replica; build makes one
// replica's policy by its plain name. A plain name is built as it is.
func replicated[P any](name string, every int, build func(string) (P, error)) (P, error) {
	var zero P
	base, n, ok, err := parseReplicas(name)
	if err != nil || !ok {
		if err != nil {
			return zero, err
		}
		return build(name)
	}
	r, err := trainer.NewReplicated(name, n, every, func() (trainer.OfflinePolicy, error) {
		p, err := build(base)
		if err != nil {
			return nil, err
		}
		op, ok := any(p).(trainer.OfflinePolicy)
		if !ok {
			return nil, fmt.Errorf("policy %q has no model to merge: it cannot run as replicas", base)
		}
		return op, nil
	})
	if err != nil {
		return zero, err
	}
	out, ok := any(r).(P)
	if !ok {
		return zero, fmt.Errorf("policy %q: replicas do not fit this command", name)
	}
	return out, nil
}
