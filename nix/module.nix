# NixOS module: services.floe. Untested here (no nixpkgs offline); test/deploy/systemd.test.ts checks that the
# hardening block below is the same list of settings as deploy/systemd/floe.service's.
flake:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.floe;
  inherit (lib) mkEnableOption mkIf mkOption types optionalAttrs;
  nullOrStr = types.nullOr types.str;
in
{
  options.services.floe = {
    enable = mkEnableOption "Floe, the flake registry and Nix binary cache";
    package = mkOption {
      type = types.package;
      default = flake.packages.${pkgs.stdenv.hostPlatform.system}.default;
      description = "The Floe package.";
    };
    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/floe";
      description = "Data directory (a StateDirectory under /var/lib): SQLite, NARs, keys, the admin token.";
    };
    listen = mkOption {
      type = types.str;
      default = "127.0.0.1:8080";
      description = "Address and port `floe serve` listens on (FLOE_LISTEN).";
    };
    publicUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://cache.example.org";
      description = "The URL clients use (FLOE_PUBLIC_URL).";
    };
    databaseUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "postgres:///floe?host=/run/postgresql";
      description = "PostgreSQL instead of the embedded SQLite (FLOE_DATABASE_URL); passwords go in environmentFile.";
    };
    s3 = {
      bucket = mkOption { type = nullOrStr; default = null; description = "S3 bucket for NARs (FLOE_S3_BUCKET)."; };
      region = mkOption { type = nullOrStr; default = null; description = "FLOE_S3_REGION."; };
      endpoint = mkOption { type = nullOrStr; default = null; description = "FLOE_S3_ENDPOINT (S3-compatibles)."; };
    };
    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "Secrets as FLOE_* variables (database password, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).";
    };
    shutdownGraceSeconds = mkOption {
      type = types.ints.positive;
      default = 25;
      description = "How long SIGTERM waits for requests in flight; systemd's TimeoutStopSec is 10 s more.";
    };
    nginx = {
      enable = mkEnableOption "an nginx virtual host in front of Floe (settings of deploy/nginx/floe.conf)";
      virtualHost = mkOption { type = types.str; default = "localhost"; description = "Its server name."; };
    };
  };

  config = mkIf cfg.enable {
    systemd.services.floe = {
      description = "Floe flake registry and Nix binary cache";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "postgresql.service" ];
      environment = {
        FLOE_DATA_DIR = cfg.dataDir;
        FLOE_LISTEN = cfg.listen;
        FLOE_TRUSTED_PROXIES = "loopback";
      } // optionalAttrs (cfg.publicUrl != null) { FLOE_PUBLIC_URL = cfg.publicUrl; }
        // optionalAttrs (cfg.databaseUrl != null) { FLOE_DATABASE_URL = cfg.databaseUrl; }
        // optionalAttrs (cfg.s3.bucket != null) { FLOE_S3_BUCKET = cfg.s3.bucket; }
        // optionalAttrs (cfg.s3.region != null) { FLOE_S3_REGION = cfg.s3.region; }
        // optionalAttrs (cfg.s3.endpoint != null) { FLOE_S3_ENDPOINT = cfg.s3.endpoint; };
      serviceConfig = {
        Type = "simple";
        ExecStart = "${cfg.package}/bin/floe serve";
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
        Restart = "on-failure";
        RestartSec = "2s";
        LimitNOFILE = 65536;

        # hardening: begin
        DynamicUser = true;
        StateDirectory = "floe";
        StateDirectoryMode = "0700";
        UMask = "0077";
        Environment = [ "FLOE_SHUTDOWN_GRACE_SECONDS=${toString cfg.shutdownGraceSeconds}" ];
        KillSignal = "SIGTERM";
        KillMode = "mixed";
        TimeoutStopSec = cfg.shutdownGraceSeconds + 10;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        # hardening: end
      };
    };

    assertions = [{
      assertion = cfg.dataDir == "/var/lib/floe";
      message = "services.floe.dataDir: DynamicUser services keep state in their StateDirectory, /var/lib/floe";
    }];

    services.nginx = mkIf cfg.nginx.enable {
      enable = true;
      recommendedTlsSettings = true;
      virtualHosts.${cfg.nginx.virtualHost} = {
        forceSSL = true;
        locations."/" = {
          proxyPass = "http://${cfg.listen}";
          # As deploy/nginx/floe.conf: NARs of any size stream both ways, unbuffered, with long timeouts.
          extraConfig = ''
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
          '';
        };
      };
    };
  };
}
