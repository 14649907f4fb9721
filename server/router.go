package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// router serves fixed paths, matched exactly as sent: no redirect of
// "/a/../b" or "//b" (a 301 with an HTML body, which a client following it
// would turn into a GET), and no decoding of "%2F" into a separator (the
// escaped path is compared). A path it does not know is a JSON 404; a known
// path with a method its route does not take, a JSON 405. It adds nothing
// to the request's context and does not copy the request: every route is
// a fixed path, so there is nothing to pass on but the handler.
type router struct {
	routes           map[string]route
	notFound         http.Handler
	methodNotAllowed http.Handler
}

type route struct {
	h       http.Handler
	methods []string // nil: any method
}

func newRouter(d routeDeps) *router {
	return &router{
		routes: map[string]route{},
		notFound: instrument("other", 0, d, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, d.log, errNotFound())
		})),
		methodNotAllowed: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, d.log, errMethodNotAllowed(strings.Join([]string{http.MethodGet, http.MethodHead}, ", ")))
		}),
	}
}

// handle routes path to h for the given methods (none: any method).
func (rt *router) handle(path string, h http.Handler, methods ...string) {
	if _, dup := rt.routes[path]; dup {
		panic(fmt.Sprintf("server: route %s registered twice", path))
	}
	rt.routes[path] = route{h: h, methods: methods}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ro, ok := rt.routes[r.URL.EscapedPath()]
	switch {
	case !ok:
		rt.notFound.ServeHTTP(w, r)
	case ro.methods != nil && !slices.Contains(ro.methods, r.Method):
		rt.methodNotAllowed.ServeHTTP(w, r)
	default:
		ro.h.ServeHTTP(w, r)
	}
}
