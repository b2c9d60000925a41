package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/catalog"
)

// ItemsRequest is the body of PUT /v1/items.
type ItemsRequest struct {
	Items []catalog.Item `json:"items"`
}

// MaxItemsPerRequest bounds one upsert batch.
const MaxItemsPerRequest = 10000

// bulkTimeout bounds the Redis writes of one upsert batch.
const bulkTimeout = 30 * time.Second

func (s *Server) putItems(c *gin.Context) {
	var req ItemsRequest
	if err := decode(c, &req); err != nil {
		abortErr(c, err)
		return
	}
	auditAttrs(c, slog.Int("items", len(req.Items)))
	switch {
	case len(req.Items) == 0:
		abortErr(c, badRequest("items", "items must hold at least one item"))
		return
	case len(req.Items) > MaxItemsPerRequest:
		abortErr(c, badRequest("items", "at most %d items per request", MaxItemsPerRequest))
		return
	}
	for i := range req.Items {
		if err := req.Items[i].Validate(s.cfg.Dim); err != nil {
			var fe *catalog.FieldError
			if errors.As(err, &fe) {
				abortErr(c, badRequest(fmt.Sprintf("items[%d].%s", i, fe.Field), "item %d: %s", i, err))
				return
			}
			abortErr(c, badRequest(fmt.Sprintf("items[%d]", i), "%v", err))
			return
		}
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), bulkTimeout)
	defer cancel()
	version, err := s.cfg.Store.PutItems(ctx, req.Items)
	if err != nil {
		s.log.Error("put items", "err", err)
		abort(c, http.StatusServiceUnavailable, Error{Code: "store_unavailable", Message: "could not store the items; retry"})
		return
	}
	auditAttrs(c, slog.Uint64("catalog_version", version))
	c.JSON(http.StatusOK, gin.H{"upserted": len(req.Items), "catalog_version": version})
}

func (s *Server) getItem(c *gin.Context) {
	id := c.Param("id")
	if err := validID("id", id, true); err != nil {
		abortErr(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.StoreTimeout)
	defer cancel()
	it, ok, err := s.cfg.Store.GetItem(ctx, id)
	switch {
	case err != nil:
		abort(c, http.StatusServiceUnavailable, Error{Code: "store_unavailable", Message: "catalog store is unavailable"})
	case !ok:
		abort(c, http.StatusNotFound, Error{Code: "unknown_item", Message: fmt.Sprintf("item %q is not in the catalog", id), Field: "id"})
	default:
		c.JSON(http.StatusOK, it)
	}
}
