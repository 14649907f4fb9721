package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/server"
)

// probeCommand checks a running server's readiness, for container health
// checks in images without a shell or curl (the distroless image).
func (e *env) probeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "probe",
		Short: "Exit 0 if the server on this machine is ready (GET /readyz), else 1",
		Long: `Ask the server configured by --config (admin_listen if set, else listen)
for /readyz on the loopback interface. For container health checks:

  healthcheck: {test: ["CMD", "/keyturn", "probe", "--config", "/etc/keyturn/keyturn.yaml"]}`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			a, err := e.load()
			if err != nil {
				return err
			}
			addr, scheme := a.cfg.Listen, "http"
			if a.cfg.AdminListen != "" {
				addr = a.cfg.AdminListen
			} else if a.cfg.TLS.CertFile != "" {
				scheme = "https"
			}
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return usageErrorf("listen: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort("127.0.0.1", port)+server.PathReady, nil)
			if err != nil {
				return err
			}
			// Our own server on loopback; its certificate names the public
			// host, not 127.0.0.1, and nothing secret is sent.
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("not ready: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("not ready: %s", resp.Status)
			}
			fmt.Fprintln(e.stdout, "ready")
			return nil
		}),
	}
}
