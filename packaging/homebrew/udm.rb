# SPDX-License-Identifier: LGPL-2.1-or-later
# Homebrew formula for udm, built from a checkout (docs/macos.md):
#   brew tap-new --no-git local/udm
#   cp packaging/homebrew/udm.rb "$(brew --repository)/Library/Taps/local/homebrew-udm/Formula/"
#   HOMEBREW_UDM_SOURCE=$PWD brew install --HEAD local/udm/udm
# HOMEBREW_UDM_SOURCE names the checkout (a git repository) and
# HOMEBREW_UDM_BRANCH its branch (default main).  .github/workflows/macos.yml
# installs and tests it this way.
class Udm < Formula
  desc "Userspace device mapper: dmsetup tables as NBD exports and block devices"
  license "LGPL-2.1-or-later"
  head "file://#{ENV.fetch("HOMEBREW_UDM_SOURCE", File.expand_path("../..", __dir__))}",
       using: :git, branch: ENV.fetch("HOMEBREW_UDM_BRANCH", "main")

  depends_on "meson" => :build
  depends_on "ninja" => :build
  depends_on "pkgconf" => :build
  depends_on "libgcrypt"
  depends_on "zstd"
  uses_from_macos "zlib"

  def install
    # FUSE-T's installer keeps its fuse3.pc outside Homebrew's prefix.
    fuse_t_pc = "/Library/Application Support/fuse-t/pkgconfig"
    ENV.append_path "PKG_CONFIG_PATH", fuse_t_pc if File.directory?(fuse_t_pc)
    system "meson", "setup", "build", *std_meson_args
    system "meson", "compile", "-C", "build", "--verbose"
    system "meson", "install", "-C", "build"
  end

  def caveats
    <<~EOS
      "udm attach" (a /dev/diskN for a device) needs a FUSE with the libfuse3
      API when udm is built: FUSE-T (no kernel extension),
        brew install --cask macos-fuse-t/cask/fuse-t
      or macFUSE with libfuse3.  Install it first, then udm.  Without it,
      devices are still served over NBD ("udm uri NAME").
      The runtime directory is /var/run/udm for root, else udm in your
      temporary folder; UDM_RUNTIME_DIR overrides it.
    EOS
  end

  test do
    assert_match(/^udm \d/, shell_output("#{bin}/udm --version"))
    assert_match "qcow2", shell_output("#{bin}/udm-image formats")
    # libudm loads: udm version reports the library's version.
    assert_match(/^Library version: +\d/, shell_output("#{bin}/udm version"))
  end
end
