package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/experiment"
)

// requireAdmin guards admin routes with a bearer token compared in constant
// time. Without a configured token the admin routes are off.
func (s *Server) requireAdmin(c *gin.Context) {
	if s.cfg.AdminToken == "" {
		abort(c, http.StatusForbidden, Error{Code: "admin_disabled", Message: "admin routes are disabled: set NOVAREC_ADMIN_TOKEN"})
		return
	}
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="novarec-admin"`)
		abort(c, http.StatusUnauthorized, Error{Code: "unauthorized", Message: "a valid bearer token is required", Field: "Authorization"})
		return
	}
	c.Next()
}

func (s *Server) reloadExperiments(c *gin.Context) {
	if s.cfg.Experiments == nil {
		abort(c, http.StatusNotFound, Error{Code: "no_experiments", Message: "no experiments file configured (-experiments)"})
		return
	}
	cfg, err := s.cfg.Experiments.Reload(c.Request.Context())
	if err != nil {
		var ve *experiment.ValidationError
		if errors.As(err, &ve) {
			abort(c, http.StatusBadRequest, Error{Code: "invalid_experiment", Message: err.Error(), Field: ve.Field})
			return
		}
		abort(c, http.StatusBadRequest, Error{Code: "invalid_experiment", Message: err.Error()})
		return
	}
	s.log.Info("experiments reloaded", "experiment", cfg.Name, "variants", len(cfg.Variants))
	c.JSON(http.StatusOK, cfg)
}

func (s *Server) getExperiments(c *gin.Context) {
	if s.cfg.Experiments == nil || s.cfg.Experiments.Current() == nil {
		abort(c, http.StatusNotFound, Error{Code: "no_experiments", Message: "no experiment is running"})
		return
	}
	c.JSON(http.StatusOK, s.cfg.Experiments.Current())
}

func (s *Server) experimentReport(c *gin.Context) {
	var exp *experiment.Config
	if s.cfg.Experiments != nil {
		exp = s.cfg.Experiments.Current()
	}
	name, err := pathParam(c, "name")
	if err != nil || exp == nil || exp.Name != name || s.cfg.Reports == nil {
		abort(c, http.StatusNotFound, Error{Code: "unknown_experiment", Message: "no running experiment of that name", Field: "name"})
		return
	}
	r, err := s.cfg.Reports.Report(c.Request.Context(), exp)
	if err != nil {
		s.log.Error("experiment report", "experiment", exp.Name, "err", err)
		abort(c, http.StatusServiceUnavailable, Error{Code: "store_unavailable", Message: "could not read the experiment's aggregates"})
		return
	}
	c.JSON(http.StatusOK, r)
}
