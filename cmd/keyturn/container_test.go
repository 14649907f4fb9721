package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Docker does not run on the development machine, so the container files
// are checked by reading: what they must keep true is pinned here.

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("%d FROM lines: want a multi-stage build", n)
	}
	for _, want := range []string{
		"CGO_ENABLED=0",           // a static binary
		"go build",                // built from source in the image
		"./cmd/keyturn",           // the server
		"distroless/static",       // no shell or package manager in the final image
		"USER nonroot",            // not root
		`ENTRYPOINT ["/keyturn"]`, // exec form: signals reach keyturn (graceful shutdown)
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string
			Build       any
			Environment map[string]string
			Volumes     []string
			Healthcheck struct{ Test []string }
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		}
		Volumes map[string]any
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	pg, kt := c.Services["postgres"], c.Services["keyturn"]
	if !strings.HasPrefix(pg.Image, "postgres:") || len(pg.Healthcheck.Test) == 0 {
		t.Errorf("postgres: image %q, healthcheck %v", pg.Image, pg.Healthcheck.Test)
	}
	if len(pg.Volumes) == 0 {
		t.Error("postgres keeps no volume")
	} else if vol, _, _ := strings.Cut(pg.Volumes[0], ":"); c.Volumes == nil || !hasKey(c.Volumes, vol) {
		t.Errorf("postgres volume %q is not a named volume", vol)
	}
	if kt.Build == nil {
		t.Error("keyturn is not built from the Dockerfile")
	}
	if kt.DependsOn["postgres"].Condition != "service_healthy" {
		t.Error("keyturn does not wait for a healthy postgres")
	}
	if u := kt.Environment["KEYTURN_DATABASE_URL"]; !strings.HasPrefix(u, "postgres://") || !strings.Contains(u, "@postgres:5432/") {
		t.Errorf("KEYTURN_DATABASE_URL %q does not point at the postgres service", u)
	}
	if s := kt.Environment["KEYTURN_SECRET"]; !strings.HasPrefix(s, "${KEYTURN_SECRET:?") {
		t.Errorf("KEYTURN_SECRET %q must come from the environment, required", s)
	}
	mounted := false
	for _, v := range kt.Volumes {
		mounted = mounted || strings.HasSuffix(v, ":/etc/keyturn/keyturn.yaml:ro")
	}
	if !mounted {
		t.Errorf("config not mounted read-only: %v", kt.Volumes)
	}
	// The mounted config must be valid: it is the example, checked in TestExampleConfig.
	if !strings.Contains(strings.Join(kt.Volumes, " "), "keyturn.example.yaml") {
		t.Errorf("compose mounts another config than the checked example: %v", kt.Volumes)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }
