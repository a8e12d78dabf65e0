# Floe for Nix users: `nix build` gives the package, `nixosModules.default` the service (nix/module.nix).
# Untested here (no nixpkgs offline): after changing package-lock.json, set npmDepsHash to the hash the
# first `nix build` reports (docs/RELEASING.md).
{
  description = "Floe: self-hostable flake registry and identity-aware Nix binary cache";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: {
        default = pkgs.buildNpmPackage {
          pname = "floe";
          version = (builtins.fromJSON (builtins.readFile ./package.json)).version;
          src = ./.;
          nodejs = pkgs.nodejs_24;
          npmDepsHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
          # The optional `node` dependency downloads a Node binary for machines without Node 22+; Nix has one.
          npmFlags = [ "--omit=optional" ];
          nativeBuildInputs = [ pkgs.python3 ]; # node-gyp, for zstd-napi
          # No .git in the store: the commit comes from the flake (scripts/build-info.mjs).
          env.FLOE_BUILD_COMMIT = self.rev or self.dirtyRev or "";
          meta = {
            description = "Self-hostable flake registry and identity-aware Nix binary cache";
            license = pkgs.lib.licenses.asl20;
            mainProgram = "floe";
          };
        };
      });

      nixosModules.default = import ./nix/module.nix self;
    };
}
