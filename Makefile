# Dockyard: build, check and install.
#   make                      build release binaries
#   make check                everything CI runs (see README "Tests")
#   make install DESTDIR=… PREFIX=/usr
#   make bench                generator, installer, new, network and sysbox watcher benchmarks (PERFORMANCE.md)
#   sudo make quickstart      install and start an instance on this host (offline:
#                             DOCKYARD_QUICKSTART_FROM=DIR, see packaging/quickstart.sh)
#   sudo make lifecycle       the lifecycle suite alone (booted systemd, real dockerd)
#   sudo make lifecycle-cli   the dockyard CLI's lifecycle tests (status, verify, destroy)
#   sudo make lifecycle-density  many instances: new, concurrent start, reboot (DENSITY_N=10)
#   sudo make lifecycle-tenant  rootless instances handed to a tenant (not in check yet: 2 known bugs)
#   sudo make lifecycle-sid   suite and CLI suites again on Debian sid's Docker 28.5.2
#   sudo make lifecycle-nft   the lifecycle suites again with the nftables backend

PREFIX      ?= /usr
SYSCONFDIR  ?= /etc
DESTDIR     ?=
CARGO       ?= cargo
INSTALL     ?= install

BINDIR        = $(PREFIX)/bin
LIBEXECDIR    = $(PREFIX)/libexec/dockyard
GENERATORDIR  = $(PREFIX)/lib/systemd/system-generators
UNITDIR       = $(PREFIX)/lib/systemd/system
MANDIR        = $(PREFIX)/share/man
DOCDIR        = $(PREFIX)/share/doc/dockyard
DATADIR       = $(PREFIX)/share/dockyard
BASHCOMPDIR   = $(PREFIX)/share/bash-completion/completions
# Debian's zsh searches vendor-completions; Fedora's, site-functions (the
# RPM build sets it).
ZSHCOMPDIR   ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR   = $(PREFIX)/share/fish/vendor_completions.d

RELEASE       = $(or $(CARGO_TARGET_DIR),target)/release
HELPER_NAMES  = dockyard-network dockyard-prepare dockyard-sysbox-chown
MAN5          = man/dockyard.conf.5 man/dockyard-host.conf.5
MAN8          = man/dockyard-generator.8 man/dockyard-helper.8 man/dockyard.8

# Generated units call the helpers and name the package's data files by
# absolute path: build with the directories they are installed to.
export DOCKYARD_LIBEXEC_DIR = $(LIBEXECDIR)
export DOCKYARD_DATA_DIR = $(DATADIR)

.PHONY: all build check deps test lint man-check verify-units lifecycle lifecycle-cli lifecycle-sid lifecycle-isolation lifecycle-tenant lifecycle-resources lifecycle-package lifecycle-density lifecycle-quickstart lifecycle-nft install uninstall bench clean quickstart

all: build

build:
	$(CARGO) build --release --locked --workspace

test:
	$(CARGO) test --locked --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

man-check:
	@for page in $(MAN5) $(MAN8); do \
		out=$$(LC_ALL=C.UTF-8 groff -man -ww -z $$page 2>&1); \
		if [ -n "$$out" ]; then echo "$$page: $$out"; exit 1; fi; \
		echo "$$page: renders without warnings"; \
	done

verify-units: build
	tests/generator/verify-units.sh

# Issue 3's suite under a booted systemd (tests/lifecycle/README.md); needs
# root. It installs the .deb built from this checkout with apt-get. Then the
# upgrade test: the previous commit's .deb, an instance running, upgraded to
# this one.
lifecycle: build
	bash tests/lifecycle/suite.sh
	bash tests/lifecycle/upgrade.sh

# Issue 5's CLI tests (status, verify, destroy, new) in the same booted host.
lifecycle-cli: build
	LC_INSTALL_NO_BUILD=1 bash tests/lifecycle/cli_suite.sh

# Issue 12: the runtime and CLI suites again on Debian sid's engine (Docker
# 28.5.2, containerd 2.1, runc 1.3, the real Compose v2 plugin), beside the
# 20.10 of the targets above. The upgrade test stays on bookworm: it is about
# Dockyard's package, not the engine. Reuses the .deb suite.sh built when
# there is one.
lifecycle-sid: build
	LC_SUITE=sid LC_DEB="$$(ls -t $(or $(CARGO_TARGET_DIR),target)/debian/dockyard_*.deb 2>/dev/null | head -n1)" \
		bash tests/lifecycle/suite.sh
	LC_SUITE=sid LC_INSTALL_NO_BUILD=1 bash tests/lifecycle/cli_suite.sh

# Issue 9's isolation tests (instances against each other, the outside and the
# host's own Docker and containerd) in the same booted host; installs the .deb
# built from this checkout, as suite.sh does.
lifecycle-isolation: build
	bash tests/lifecycle/isolation_suite.sh

# Issue 21's tenant tests: rootless instances handed to an unprivileged user, beside a
# rootful one and the host's own Docker: what the tenant can and cannot reach, and a
# rootless instance's restart, kill -9, reboot and destroy (tests/lifecycle/tenant_suite.sh).
# Not in `make check` yet: two known product bugs fail it (a killed slirp4netns is
# not noticed, issue 21; containerd killed under Docker 28 loses exec). Run it on
# all three setups with this target.
lifecycle-tenant: build
	bash tests/lifecycle/tenant_suite.sh
	LC_FIREWALL=nftables LC_INSTALL_NO_BUILD=1 bash tests/lifecycle/tenant_suite.sh
	LC_SUITE=sid LC_INSTALL_NO_BUILD=1 bash tests/lifecycle/tenant_suite.sh

# Issue 14's resource tests: [Resources] on the instance's slice, status's figures,
# set-property, daemon-reload (tests/lifecycle/resources_suite.sh).
lifecycle-resources: build
	LC_INSTALL_NO_BUILD=1 bash tests/lifecycle/resources_suite.sh

# Issue 16's package lifecycle tests: the .deb built from this checkout installed in a
# booted host, instances running, then `apt-get remove dockyard`: nothing left.
lifecycle-package: build
	bash tests/lifecycle/package_suite.sh

# Issue 11's density test: DENSITY_N instances (10 here; the benchmark runs 100) made
# with `dockyard new`, started at once, a container in each, then a reboot.
lifecycle-density: build
	bash tests/lifecycle/density_suite.sh

# Issue 13's quick start end to end: `make quickstart` from a checkout in a booted host
# without internet, from the .deb built from this checkout and the distribution's
# Docker packages (fetched here with apt-get download, cached).
lifecycle-quickstart: build
	bash tests/lifecycle/quickstart_suite.sh

# What `make check` needs from the distribution, those missing only.
deps:
	packaging/install-deps.sh

# Every lifecycle suite once more with the host's [Firewall] Backend=nftables
# (LC_FIREWALL, tests/lifecycle/README.md): the targets above run them with
# iptables. The upgrade goes from the previous commit's package, which may
# have written iptables rules, onto nftables.
lifecycle-nft: build
	LC_FIREWALL=nftables bash tests/lifecycle/suite.sh
	LC_FIREWALL=nftables bash tests/lifecycle/upgrade.sh
	LC_FIREWALL=nftables LC_INSTALL_NO_BUILD=1 bash tests/lifecycle/cli_suite.sh
	LC_FIREWALL=nftables bash tests/lifecycle/isolation_suite.sh
	LC_FIREWALL=nftables bash tests/lifecycle/package_suite.sh

check: deps lint test man-check verify-units lifecycle lifecycle-cli lifecycle-sid lifecycle-isolation lifecycle-resources packages ansible-test lifecycle-package lifecycle-density lifecycle-nft lifecycle-quickstart

install: build
	$(INSTALL) -d $(DESTDIR)$(GENERATORDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples/dy1.conf.d \
		$(DESTDIR)$(DATADIR) $(DESTDIR)$(SYSCONFDIR)/dockyard/instances.d $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 0755 $(RELEASE)/dockyard $(DESTDIR)$(BINDIR)/dockyard
	$(INSTALL) -m 0755 $(RELEASE)/dockyard-generator $(DESTDIR)$(GENERATORDIR)/dockyard-generator
	$(INSTALL) -m 0755 $(RELEASE)/dockyard-helper $(DESTDIR)$(LIBEXECDIR)/dockyard-helper
	for name in $(HELPER_NAMES); do ln -sf dockyard-helper $(DESTDIR)$(LIBEXECDIR)/$$name; done
	$(INSTALL) -m 0644 units/dockyard.slice $(DESTDIR)$(UNITDIR)/dockyard.slice
	$(INSTALL) -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 conf/examples/*.conf $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -m 0644 conf/examples/dy1.conf.d/*.conf $(DESTDIR)$(DOCDIR)/examples/dy1.conf.d/
	$(INSTALL) -m 0644 conf/artifacts.toml $(DESTDIR)$(DATADIR)/artifacts.toml
	$(INSTALL) -m 0644 conf/containerd.toml $(DESTDIR)$(DATADIR)/containerd.toml
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	# Completion scripts, generated from the command definitions.
	$(RELEASE)/dockyard completions bash > $(DESTDIR)$(BASHCOMPDIR)/dockyard
	$(RELEASE)/dockyard completions zsh > $(DESTDIR)$(ZSHCOMPDIR)/_dockyard
	$(RELEASE)/dockyard completions fish > $(DESTDIR)$(FISHCOMPDIR)/dockyard.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/dockyard $(DESTDIR)$(ZSHCOMPDIR)/_dockyard $(DESTDIR)$(FISHCOMPDIR)/dockyard.fish

uninstall:
	rm -f $(DESTDIR)$(GENERATORDIR)/dockyard-generator $(DESTDIR)$(UNITDIR)/dockyard.slice
	rm -f $(DESTDIR)$(BINDIR)/dockyard
	rm -f $(DESTDIR)$(BASHCOMPDIR)/dockyard $(DESTDIR)$(ZSHCOMPDIR)/_dockyard $(DESTDIR)$(FISHCOMPDIR)/dockyard.fish
	rm -f $(DESTDIR)$(LIBEXECDIR)/dockyard-helper $(addprefix $(DESTDIR)$(LIBEXECDIR)/,$(HELPER_NAMES))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))
	rm -rf $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)
	-rmdir $(DESTDIR)$(LIBEXECDIR)

# Packages (target/debian/*.deb, target/rpm/*/*.rpm), each checked by
# lintian / rpmlint with no errors or warnings.
deb:
	packaging/deb/build.sh

rpm:
	packaging/rpm/build.sh

packages: deb rpm

# The Ansible role, run twice over SSH against a booted systemd host.
ansible-test:
	bash packaging/ansible/test.sh

# Build, install, give Dockyard Docker binaries and start instance dy1.
quickstart:
	packaging/quickstart.sh

bench: build
	$(CARGO) bench --locked -p dockyard-generator --bench generator
	$(CARGO) bench --locked -p dockyard-cli --bench install
	$(CARGO) bench --locked -p dockyard-cli --bench new
	$(CARGO) bench --locked -p dockyard-helpers --bench network
	$(CARGO) bench --locked -p dockyard-helpers --bench sysbox_chown
	# Start overhead, boot to 10/50/100 instances and memory, in a booted host (root).
	bash tests/lifecycle/density_bench.sh
	# The density test at full size (CI runs it with 10): about 5 minutes on 2 cores.
	DENSITY_N=100 bash tests/lifecycle/density_suite.sh

clean:
	$(CARGO) clean
