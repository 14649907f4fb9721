package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newBrowser starts headless Chromium (Debian's chromium package, or the
// binary KEYTURN_CHROMIUM names) for a test of what a person sees, and
// returns a context that drives a fresh tab of it. Without Chromium the
// test skips, so that `go test ./...` needs Go alone; CI sets
// KEYTURN_TEST_REQUIRE_BROWSER, and then a missing or broken Chromium fails
// the test instead. The browser trusts any certificate: the tests serve
// over httptest's self-signed TLS, so that the pages run with the cookies
// of production (__Host-, Secure).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("KEYTURN_CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		if os.Getenv("KEYTURN_TEST_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium found (set KEYTURN_CHROMIUM or install Debian's chromium) and KEYTURN_TEST_REQUIRE_BROWSER is set")
		}
		t.Skip("no Chromium on this machine (Debian: apt-get install chromium); CI requires it")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(900, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", bin, err)
	}
	return ctx
}

// screenshot saves a PNG of the page as it is now, under
// KEYTURN_SCREENSHOTS if set (to look at the pages), else in the test's
// temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("KEYTURN_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
