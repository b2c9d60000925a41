package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// OpenAPIYAML is the API's contract (OpenAPI 3.1), kept beside the handlers
// it describes; TestContract checks the handlers against it.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// openAPIJSON is the contract as served at GET /openapi.json, converted
// once: clients and tools expect JSON, people edit YAML.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(stringKeys(doc))
})

// stringKeys turns YAML's maps, whose keys may be numbers (status codes),
// into JSON objects with string keys.
func stringKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = stringKeys(x)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[fmt.Sprint(k)] = stringKeys(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = stringKeys(x)
		}
	}
	return v
}

// routeFrontDoor registers what a newcomer meets first: the contract, the
// policy's knobs and, when configured, the playground page. The contract
// and the page need no key; the page asks for one when the server has keys.
func (s *Server) routeFrontDoor(r gin.IRouter) {
	r.GET("/openapi.json", func(c *gin.Context) {
		b, err := openAPIJSON()
		if err != nil {
			s.log.Error("openapi contract", "err", err)
			abort(c, http.StatusInternalServerError, Error{Code: "internal", Message: "internal error"})
			return
		}
		c.Data(http.StatusOK, "application/json", b)
	})
	// The policy explains slates: whoever may ask for them may see how
	// they are built (the playground does both with one key).
	r.GET("/v1/policy", s.require(apikey.Recommend), s.policy)
	if s.cfg.Playground != nil {
		h := gin.WrapH(s.cfg.Playground)
		r.GET("/", h)
		r.GET("/playground/*file", h)
	}
}

// PolicyResponse is the body of GET /v1/policy: what each intent level asks
// of the ranker and of the candidate pools, and how the high level picks a
// level, so that a slate can be explained from the level it was built at.
type PolicyResponse struct {
	Variant      string `json:"variant"`
	ModelVersion string `json:"model_version"`
	// Policy is what the variant is served: "hrl", its learned model, or
	// the fixed baseline its experiment arm names (experiment.Variant.Policy).
	Policy string `json:"policy"`
	// K is the slate size the pool sizes are for.
	K int `json:"k"`
	// Kappa is how sharply the level distribution concentrates around the target.
	Kappa float64 `json:"kappa"`
	// Target is t(s) = Σ weights·s_H + bias, the novelty (on the levels'
	// scale [0,1]) the high level aims at in state s_H.
	Target TargetOut  `json:"target"`
	Levels []LevelOut `json:"levels"`
	// ColdPools are the pools of a user without known history, at every level.
	ColdPools PoolsOut `json:"cold_pools"`
	// Mode is the click model the session and user propensities are read
	// with, fitted to the traffic by the trainer (-mode-refit; the default
	// until its first fit, or with -mode-refit 0, or -mode-belief=false),
	// and Prior the population's prior of a user's propensity (fitted
	// only with -mode-prior). An operator sees here what a fit found.
	Mode  ModeOut  `json:"mode"`
	Prior PriorOut `json:"prior"`
	// Worth is the model whose verdict on whether novel items pay at all
	// the decisions take (no seats where it says not): the trainer's
	// latest fit (intent.Policy.Worth), the same as Mode unless
	// -mode-belief=false; the default model before a fit.
	Worth ModeOut `json:"worth"`
}

// ModeOut is the two-mode click model (intent.ModeModel) and whether it was
// fitted to traffic.
type ModeOut struct {
	// Fitted is whether it differs from intent.DefaultModeModel: a fit
	// to logged sessions set it.
	Fitted bool `json:"fitted"`
	intent.ModeModel
}

// PriorOut is the Beta prior of a user's propensity to explore, and its mean.
type PriorOut struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	Mean  float64 `json:"mean"`
}

// TargetOut is the high level's target novelty as a linear function of the
// state features, by name.
type TargetOut struct {
	Bias    float64            `json:"bias"`
	Weights map[string]float64 `json:"weights"`
}

// LevelOut is one intent level's knobs.
type LevelOut struct {
	Level int `json:"level"`
	// Beta weighs novelty against relevance, Lambda penalises similarity
	// to items already on the slate, NovelShare is the novel pool's share
	// of the candidates that are not popular ones.
	Beta       float64  `json:"beta"`
	Lambda     float64  `json:"lambda"`
	NovelShare float64  `json:"novel_share"`
	Pools      PoolsOut `json:"pools"`
}

// PoolsOut are the candidate pools' sizes (recommend.Pools).
type PoolsOut struct {
	Familiar int `json:"familiar"`
	Novel    int `json:"novel"`
	Popular  int `json:"popular"`
}

func (s *Server) policy(c *gin.Context) {
	variant := c.Query("variant")
	if variant == "" {
		variant = DefaultVariant
		if s.cfg.Experiments != nil {
			if exp := s.cfg.Experiments.Current(); exp != nil {
				variant = exp.Control
			}
		}
	} else if err := validID("variant", variant, true); err != nil {
		abortErr(c, err)
		return
	}
	k := DefaultK
	if q := c.Query("k"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > recommend.MaxK {
			abortErr(c, badRequest("k", "k must be an integer between 1 and %d", recommend.MaxK))
			return
		}
		k = n
	}
	known := false
	for _, v := range s.variants() {
		known = known || v == variant
	}
	if !known {
		abort(c, http.StatusNotFound, Error{Code: "unknown_variant", Message: fmt.Sprintf("no variant %q is served", variant), Field: "variant"})
		return
	}
	a, err := s.armOf(variant)
	if err != nil {
		abortErr(c, err)
		return
	}
	m := a.model
	if m == nil {
		abort(c, http.StatusServiceUnavailable, Error{Code: "not_ready", Message: "model not loaded"})
		return
	}
	p := m.Intent
	out := PolicyResponse{
		Variant: variant, ModelVersion: m.Version, Policy: a.policy, K: k, Kappa: p.Kappa,
		Target: TargetOut{Bias: p.T[intent.Dim], Weights: make(map[string]float64, intent.Dim)},
		Levels: make([]LevelOut, len(p.Levels)),
	}
	for i, name := range intent.FeatureNames {
		out.Target.Weights[name] = p.T[i]
	}
	for z, l := range p.Levels {
		out.Levels[z] = LevelOut{Level: z, Beta: l.Beta, Lambda: l.Lambda, NovelShare: l.NovelShare, Pools: poolsOut(a.engine.Pools(k, l, false))}
	}
	if len(p.Levels) > 0 {
		out.ColdPools = poolsOut(a.engine.Pools(k, p.Levels[0], true))
	}
	mm := m.ModeModel()
	out.Mode = ModeOut{Fitted: mm != intent.DefaultModeModel(), ModeModel: mm}
	prior := p.Prior
	if !(prior.Alpha > 0 && prior.Beta > 0) {
		prior = intent.DefaultPrior
	}
	out.Prior = PriorOut{Alpha: prior.Alpha, Beta: prior.Beta, Mean: prior.Alpha / (prior.Alpha + prior.Beta)}
	wm := m.WorthModel()
	out.Worth = ModeOut{Fitted: wm != intent.DefaultModeModel(), ModeModel: wm}
	c.JSON(http.StatusOK, &out)
}

func poolsOut(p recommend.Pools) PoolsOut {
	return PoolsOut{Familiar: p.Familiar, Novel: p.Novel, Popular: p.Popular}
}
