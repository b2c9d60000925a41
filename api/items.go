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
	if err := validateItems(req.Items, s.cfg.Dim); err != nil {
		abortErr(c, err)
		return
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
	id, err := pathParam(c, "id")
	if err == nil {
		err = validID("id", id, true)
	}
	if err != nil {
		abortErr(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.StoreTimeout)
	defer cancel()
	it, ok, err := s.cfg.Store.GetItem(ctx, id)
	if err != nil {
		// Redis is the catalog's source of truth, but when it cannot
		// answer in time (down, or a CPU-starved box) the served snapshot
		// still knows every item but those added since its build: answer
		// from it rather than fail a read the service can serve.
		if snap := s.cfg.Catalog.Current(); snap != nil {
			if i, found := snap.Index(id); found {
				it, ok, err = *snap.Item(i), true, nil
			}
		}
	}
	switch {
	case err != nil:
		abort(c, http.StatusServiceUnavailable, Error{Code: "store_unavailable", Message: "catalog store is unavailable"})
	case !ok:
		abort(c, http.StatusNotFound, Error{Code: "unknown_item", Message: fmt.Sprintf("item %q is not in the catalog", id), Field: "id"})
	default:
		c.JSON(http.StatusOK, it)
	}
}

// validateItems checks a batch: every item valid (catalog.Item.Validate),
// at least one category each (the API has no default category: an item
// without one would never be a novel or familiar candidate), and no id
// twice, since a batch stores one item per id and "upserted" must count
// what was stored.
func validateItems(items []catalog.Item, dim int) error {
	first := make(map[string]int, len(items))
	for i := range items {
		it := &items[i]
		if err := it.Validate(dim); err != nil {
			var fe *catalog.FieldError
			if errors.As(err, &fe) {
				f := fmt.Sprintf("items[%d].%s", i, fe.Field)
				return badRequest(f, "%s %s", f, fe.Msg)
			}
			return badRequest(fmt.Sprintf("items[%d]", i), "%v", err)
		}
		if len(it.Categories) == 0 {
			f := fmt.Sprintf("items[%d].categories", i)
			return badRequest(f, "%s must hold at least one category", f)
		}
		if j, dup := first[it.ID]; dup {
			f := fmt.Sprintf("items[%d].id", i)
			return badRequest(f, "%s %q is also items[%d].id: each id at most once per request", f, it.ID, j)
		}
		first[it.ID] = i
	}
	return nil
}
