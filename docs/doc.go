// Package docs holds novarec's documentation (the Markdown files beside
// this one) and no code. Its test keeps README.md and docs/*.md true: every
// relative link resolves inside the repository, and the commands in their
// fenced blocks run as written.
//
// The fenced-block convention:
//
//   - A block marked sh is checked command by command. `go run ./PKG ARGS`
//     (and `go build`) must build, and its flags must parse: the checker runs
//     the built command with ARGS followed by -h, which the flag package
//     answers with exit status 0 only when every flag before it exists and
//     has a valid value, so expensive commands (a full replay, a soak) are
//     checked without running them. `go test` commands must name packages
//     that exist, and their -run and -bench patterns must match a test or
//     benchmark (`go test -list`). `bash FILE` must be a script that parses
//     (`bash -n`). `curl` must call a route of the OpenAPI contract
//     (api/openapi.yaml) with its method, and a curl that sends a body must
//     declare it JSON (-H 'Content-Type: application/json' or --json): the
//     server answers 415 otherwise. A document with a curl to a route that
//     needs an API key either sends one (Authorization or X-API-Key) or
//     links docs/security.md, which says how. Environment assignments before a
//     command (`REDIS_ADDR=… go run …`) are kept for the run; other tools
//     (kcat, docker, kubectl) are not checked.
//   - A block marked `sh run` is also run as written, line by line, from the
//     repository's root, and every line must exit 0: for cheap commands only.
//   - Blocks in other languages (yaml, output without a language) are text.
package docs
