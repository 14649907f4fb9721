package config

import (
	"bytes"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const svgLogo = `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`

func encodeLogo(t *testing.T, encode func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := encode(&b, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngLogo(t *testing.T) []byte {
	return encodeLogo(t, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) })
}

// webpLogo is the start of a WebP file: enough for content sniffing.
var webpLogo = []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")

// TestLoadLogo: pages.logo_file is read at load, and only a PNG, JPEG, GIF
// or WebP image of at most 256 KiB is accepted, judged by its content.
func TestLoadLogo(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pngData := pngLogo(t)
	atMost := append(pngLogo(t), make([]byte, MaxLogoSize-len(pngData))...)
	tests := []struct {
		name string
		path string
		want string // "" accepted
	}{
		{"png", write("logo.png", pngData), ""},
		{"jpeg", write("logo.jpg", encodeLogo(t, func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) })), ""},
		{"gif", write("logo.gif", encodeLogo(t, func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) })), ""},
		{"webp", write("logo.webp", webpLogo), ""},
		{"png named svg", write("png.svg", pngData), ""},
		{"256 KiB", write("max.png", atMost), ""},
		{"larger", write("big.png", append(atMost, 0)), "pages.logo_file: larger than 256 KiB"},
		{"svg", write("logo.svg", []byte(svgLogo)), "pages.logo_file: text/xml; charset=utf-8 is not a PNG, JPEG, GIF or WebP image"},
		{"svg named png", write("svg.png", []byte(svgLogo)), "is not a PNG, JPEG, GIF or WebP image"},
		{"html", write("logo.html", []byte("<html><script>alert(1)</script>")), "pages.logo_file: text/html; charset=utf-8 is not a PNG"},
		{"empty", write("empty.png", nil), "pages.logo_file: text/plain; charset=utf-8 is not a PNG"},
		{"missing", filepath.Join(dir, "nope.png"), "pages.logo_file: open " + filepath.Join(dir, "nope.png") + ": no such file or directory"},
		{"directory", dir, "pages.logo_file: read " + dir + ": is a directory"},
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		// An endless file is read no further than the limit.
		tests = append(tests, struct{ name, path, want string }{"endless", "/dev/zero", "pages.logo_file: larger than 256 KiB"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, "pages:\n  logo_file: '"+tt.path+"'\n"), env(nil))
			if tt.want != "" {
				wantErrors(t, err, true, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(tt.path)
			if !bytes.Equal(c.Pages.Logo, want) || c.Pages.LogoFile != tt.path {
				t.Errorf("Pages = %q, %d bytes; want the file's %d bytes", c.Pages.LogoFile, len(c.Pages.Logo), len(want))
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate = %v", err)
			}
		})
	}
}

// TestLoadLogoRelative: a relative logo_file is relative to the working
// directory, like every other path in the configuration.
func TestLoadLogoRelative(t *testing.T) {
	config := writeFile(t, "pages:\n  logo_file: brand/logo.png\n")
	wd := t.TempDir()
	if err := os.Mkdir(filepath.Join(wd, "brand"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wd, "brand", "logo.png"), pngLogo(t), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(wd)
	c, err := Load(config, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Pages.Logo, pngLogo(t)) {
		t.Errorf("Logo = %d bytes, want the PNG", len(c.Pages.Logo))
	}
}

// TestLoadPagesProblems: the page settings are reported with everything
// else, once each, and a logo_file that is not a string is not read.
func TestLoadPagesProblems(t *testing.T) {
	_, err := Load(writeFile(t, `
authorize:
  code_ttl: 11m
  browser_session_ttl: 0s
  code_lifetime: 1m
pages:
  product_name: "Key\u202eturn"
  logo_file: [a.png]
`), env(nil))
	wantErrors(t, err, true,
		"authorize.code_ttl: 11m not in (0, 10m]",
		"authorize.browser_session_ttl: 0s not in (0, 720h]",
		"authorize.code_lifetime: unknown key",
		"pages.product_name: \"Key\\u202eturn\" has a character that is not printable (U+202E)",
		"pages.logo_file: cannot unmarshal !!seq into string",
	)
	if err != nil && strings.Contains(err.Error(), "not read") {
		t.Errorf("a logo_file that did not decode was reported as unread:\n%v", err)
	}
}
