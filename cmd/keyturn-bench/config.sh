# Shared by run.sh and ab.sh (sourced, not run): the one bench config, so
# that every tool measures the same server settings.

# write_config FILE PORT DATABASE_URL DATA_DIR [EXTRA_YAML]: the bench
# config: a confidential client `bench` (password, refresh_token,
# client_credentials; secret in KEYTURN_BENCH_CLIENT_SECRET) and a resource
# server `rs` (introspect: true; secret in KEYTURN_BENCH_INTROSPECT_SECRET),
# 16 database connections, a JSON access log. The sweeper runs every 10 s
# (the default is 10 minutes), so that its statements run during every
# measurement and the storage figures are taken with it running.
# EXTRA_YAML, then $SERVER_YAML if set, are appended.
write_config() {
	cat > "$1" <<-EOF
	issuer: http://127.0.0.1:$2
	listen: 127.0.0.1:$2
	data_dir: $4
	database:
	  url: "$3"
	  max_open_conns: 16
	cleanup:
	  interval: 10s
	log:
	  format: json
	  level: info
	clients:
	  - id: bench
	    secret_env: KEYTURN_BENCH_CLIENT_SECRET
	    grant_types: [password, refresh_token, client_credentials]
	    scopes: [read, write]
	    default_scopes: [read]
	  - id: rs
	    secret_env: KEYTURN_BENCH_INTROSPECT_SECRET
	    introspect: true
	    resources: [http://127.0.0.1:$2]
	EOF
	if [[ -n ${5:-} ]]; then printf '%s\n' "$5" >> "$1"; fi
	if [[ -n ${SERVER_YAML:-} ]]; then printf '%s\n' "$SERVER_YAML" >> "$1"; fi
}
