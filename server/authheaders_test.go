package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/server"
)

// TestRepeatedAuthorizationHeader: two Authorization header fields are
// two sets of credentials (RFC 9110 §11.6.2 defines one; RFC 6749 §2.3:
// one authentication method per request). Taking the first, as
// Header.Get does, lets a proxy or log that reads the last disagree with
// the server on which client a request is; it is refused as malformed,
// like Basic together with client_secret, on both databases.
func TestRepeatedAuthorizationHeader(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			for _, path := range []string{server.PathToken, server.PathIntrospect, server.PathRevoke} {
				form := url.Values{"grant_type": {"client_credentials"}, "token": {"x"}}
				req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Add("Authorization", basic("cc-only", ccSecret))
				req.Header.Add("Authorization", basic("rs-2", "not its secret"))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r := reply{status: resp.StatusCode, header: resp.Header, body: body}
				_ = json.Unmarshal(body, &r.json)
				wantError(t, r, http.StatusBadRequest, "invalid_request")
			}
		})
	}
}
