package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/novarec/novarec/catalog"
)

// TestStrictInput sends each malformed or out-of-bounds input of issue 12
// and checks the status, the field named and that no message leaks a Go
// type name.
func TestStrictInput(t *testing.T) {
	f := newFixture(t)
	item := f.snap.Item(0).ID
	fb := func(extra string) string {
		return `{"user_id":"u","item_id":"` + item + `","type":"rating"` + extra + `}`
	}
	for _, tc := range []struct {
		name, method, path, ctype, body string
		code                            int
		field                           string
	}{
		{"invalid UTF-8 in user_id", "POST", "/v1/recommend", "", "{\"user_id\":\"a\xff\xfeb\"}", 400, "user_id"},
		{"invalid UTF-8 deep inside", "PUT", "/v1/items", "", "{\"items\":[{\"id\":\"a\",\"categories\":[\"x\"]},{\"id\":\"b\",\"categories\":[\"ok\",\"\xc3\"]}]}", 400, "items[1].categories[1]"},
		{"lone surrogate in user_id", "POST", "/v1/recommend", "", `{"user_id":"a\ud800"}`, 400, "user_id"},
		{"U+FFFD in session_id", "POST", "/v1/recommend", "", `{"user_id":"a","session_id":"\ufffd"}`, 400, "session_id"},
		{"C1 control in exclude", "POST", "/v1/recommend", "", `{"user_id":"a","exclude":["x","\u0085"]}`, 400, "exclude[1]"},
		{"duplicate id in a batch", "PUT", "/v1/items", "", `{"items":[{"id":"d","categories":["x"]},{"id":"e","categories":["x"]},{"id":"d","categories":["y"]}]}`, 400, "items[2].id"},
		{"no categories", "PUT", "/v1/items", "", `{"items":[{"id":"a"}]}`, 400, "items[0].categories"},
		{"empty categories", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":[]}]}`, 400, "items[0].categories"},
		{"empty category name", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":["x",""]}]}`, 400, "items[0].categories[1]"},
		{"huge popularity", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":["x"],"popularity":1e308}]}`, 400, "items[0].popularity"},
		{"huge embedding value", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":["x"],"embedding":[` + strings.Repeat("0,", catalog.DefaultDim-1) + `1e30]}]}`, 400, fmt.Sprintf("items[0].embedding[%d]", catalog.DefaultDim-1)},
		{"huge feedback value", "POST", "/v1/feedback", "", fb(`,"value":-1e300`), 400, "value"},
		{"feedback value at the bound", "POST", "/v1/feedback", "", fb(`,"value":-1e6`), 202, ""},
		{"text/plain", "POST", "/v1/recommend", "text/plain", `{"user_id":"a"}`, 415, "Content-Type"},
		{"form", "POST", "/v1/feedback", "application/x-www-form-urlencoded", fb(`,"value":1`), 415, "Content-Type"},
		{"no Content-Type", "PUT", "/v1/items", "-", `{"items":[{"id":"a","categories":["x"]}]}`, 415, "Content-Type"},
		{"latin-1 JSON", "POST", "/v1/recommend", "application/json; charset=iso-8859-1", `{"user_id":"a"}`, 415, "Content-Type"},
		{"JSON with charset", "POST", "/v1/recommend", "application/json; charset=UTF-8", `{"user_id":"a"}`, 200, ""},
		{"a +json type", "POST", "/v1/recommend", "application/vnd.novarec+json", `{"user_id":"a"}`, 200, ""},
		{"top-level array", "POST", "/v1/recommend", "", `[{"user_id":"a"}]`, 400, ""},
		{"top-level string", "PUT", "/v1/items", "", `"items"`, 400, ""},
		{"embedding of the wrong type", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":["x"]},{"id":"b","categories":["x"],"embedding":"x"}]}`, 400, "items[1].embedding"},
		{"embedding element of the wrong type", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":["x"],"embedding":[0.5,"x"]}]}`, 400, "items[0].embedding[1]"},
		{"categories of the wrong type", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":"x"}]}`, 400, "items[0].categories"},
		{"unknown nested field", "PUT", "/v1/items", "", `{"items":[{"id":"a","categories":["x"]},{"id":"b","categories":["x"],"title":"B"}]}`, 400, "items[1].title"},
		{"k as a float", "POST", "/v1/recommend", "", `{"user_id":"a","k":2.5}`, 400, "k"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if tc.code < 400 {
				return
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
				t.Fatalf("error body %q is not the JSON error shape (%v)", w.Body, err)
			}
			if body.Error.Field != tc.field {
				t.Errorf("field %q, want %q: %s", body.Error.Field, tc.field, w.Body)
			}
			for _, leak := range []string{"api.", "catalog.", "float32", "float64", "[]", "struct", "int64"} {
				if strings.Contains(body.Error.Message, leak) {
					t.Errorf("message %q names a Go type (%q)", body.Error.Message, leak)
				}
			}
		})
	}
}

// TestIDsRoundTrip stores items whose ids hold every character with a
// meaning in a URL and reads each back through its escaped path.
func TestIDsRoundTrip(t *testing.T) {
	f := newFixture(t)
	ids := []string{"a/b", "what?", "x#1", "100%", "café au lait", "a+b=c&d", "..", "日本/語", "emoji 👩‍💻", "%2F"}
	var items []catalog.Item
	for _, id := range ids {
		items = append(items, catalog.Item{ID: id, Categories: []string{"c/" + id}})
	}
	b, _ := json.Marshal(ItemsRequest{Items: items})
	if code, body := f.do(t, "PUT", "/v1/items", string(b)); code != http.StatusOK {
		t.Fatalf("put: %d %s", code, body)
	}
	for _, id := range ids {
		code, body := f.do(t, "GET", "/v1/items/"+url.PathEscape(id), "")
		var it catalog.Item
		if code != http.StatusOK || json.Unmarshal(body, &it) != nil || it.ID != id {
			t.Errorf("GET %q: %d %s", id, code, body)
		}
	}
	// The intent route unescapes user ids the same way.
	if code, body := f.do(t, "GET", "/v1/users/"+url.PathEscape("u/1?#")+"/intent", ""); code != http.StatusOK || !strings.Contains(string(body), `"user_id":"u/1?#"`) {
		t.Errorf("intent of an escaped user id: %d %s", code, body)
	}
}

// TestPutMaximumBatchWithEmbeddings sends the documented maximum,
// MaxItemsPerRequest items with full embeddings, in one request.
func TestPutMaximumBatchWithEmbeddings(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,000 items")
	}
	f := newFixture(t)
	items := catalog.Sample(MaxItemsPerRequest, 5)
	for i := range items {
		items[i].ID = fmt.Sprintf("item-with-a-realistic-id-%08d", i)
		items[i].Embedding = catalog.Embed(items[i].ID, items[i].Categories, catalog.DefaultDim)
	}
	b, err := json.Marshal(ItemsRequest{Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= MaxBodyBytes {
		t.Fatalf("the batch is only %d bytes; the test is meant to exceed the data-plane limit", len(b))
	}
	code, body := f.do(t, "PUT", "/v1/items", string(b))
	var put struct{ Upserted int }
	if code != http.StatusOK || json.Unmarshal(body, &put) != nil || put.Upserted != MaxItemsPerRequest {
		t.Fatalf("PUT of %d items (%d bytes): %d %.200s", len(items), len(b), code, body)
	}
	t.Logf("%d items with %d-dimensional embeddings: %d bytes", len(items), catalog.DefaultDim, len(b))
	// One more item is refused by count, not by size.
	items = append(items, catalog.Item{ID: "one-too-many", Categories: []string{"x"}})
	b, _ = json.Marshal(ItemsRequest{Items: items})
	if code, body := f.do(t, "PUT", "/v1/items", string(b)); code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"items"`) {
		t.Errorf("PUT of %d items: %d %.200s", len(items), code, body)
	}
}
