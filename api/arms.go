package api

import (
	"sync"

	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

// arm is what serves a variant: the engine and model its decisions take.
type arm struct {
	engine *recommend.Engine
	model  *recommend.Model
	// policy names it: experiment.Learned or a fixed baseline.
	policy string
}

// fixed reports a baseline arm (experiment.Variant.Policy): its model does
// not learn and its decisions are taken by argmax whatever the request
// asks, as the baseline is judged offline.
func (a arm) fixed() bool { return a.policy != experiment.Learned }

// baselines holds the fixed baseline arms, each built on first use: an
// engine keeps caches of its own, so an experiment without baseline arms
// pays nothing for them.
type baselines struct {
	mu  sync.Mutex
	arm map[string]arm
}

// armOf returns what serves variant: its learned model (nil until one is
// loaded) on the server's engine, or, for an arm of the running experiment
// that names a fixed baseline, that baseline (policy.NewFixed) built from
// the prior model with the server's engine settings.
func (s *Server) armOf(variant string) (arm, error) {
	learned := arm{engine: s.cfg.Engine, model: s.cfg.Models.Current(variant), policy: experiment.Learned}
	if s.cfg.Experiments == nil {
		return learned, nil
	}
	exp := s.cfg.Experiments.Current()
	if exp == nil {
		return learned, nil
	}
	v, err := exp.Variant(variant)
	if err != nil || !v.Baseline() {
		return learned, nil
	}
	s.baselines.mu.Lock()
	defer s.baselines.mu.Unlock()
	if a, ok := s.baselines.arm[v.Policy]; ok {
		return a, nil
	}
	f, err := policy.NewFixed(v.Policy, recommend.DefaultModel(), s.cfg.Engine.Config())
	if err != nil {
		return arm{}, err
	}
	a := arm{engine: recommend.NewEngine(f.Engine), model: f.Model, policy: v.Policy}
	if s.baselines.arm == nil {
		s.baselines.arm = make(map[string]arm)
	}
	s.baselines.arm[v.Policy] = a
	return a, nil
}
