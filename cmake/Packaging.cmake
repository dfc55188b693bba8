# The Debian package: `cpack -G DEB` in the build directory makes
# portcullis_<version>_<arch>.deb from everything the project installs (the
# programs, deploy/CMakeLists.txt's files, the man pages). Tested by
# interop_portcullis_package (test/integration/test_portcullis_package.py).
#
# The package installs under CMAKE_INSTALL_PREFIX, the prefix the programs'
# built-in paths were made from (portcullis_paths.h): one prefix for both, so
# the installed portcullisd finds the installed schemas.

set(PORTCULLIS_PACKAGE_MAINTAINER "The Portcullis developers <portcullis@invalid>"
    CACHE STRING "Maintainer field of the Debian package")

if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(WARNING "Debian package: prefix ${CMAKE_INSTALL_PREFIX}, not /usr (a Debian package installs under /usr; "
          "a build directory made before the default became /usr keeps /usr/local: -DCMAKE_INSTALL_PREFIX=/usr)")
endif()
if(NOT LOWDOWN_PROGRAM)
  message(WARNING "lowdown not found: a Debian package made now would have no man pages")
endif()

# Maintainer scripts: users and directories at configure, never a start.
set(PORTCULLIS_DOC_DIR ${CMAKE_INSTALL_FULL_DOCDIR})
foreach(script postinst prerm postrm)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/${script}.in ${PROJECT_BINARY_DIR}/debian/${script} @ONLY)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME portcullis)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${PORTCULLIS_PACKAGE_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "XMPP boundary guard between two security domains")
set(CPACK_PACKAGE_DESCRIPTION
  "Portcullis sits between two security domains and is the only path for XMPP\n"
  "server-to-server traffic between them: two edges terminate S2S/TLS on each\n"
  "side, a filter without network access runs every stanza through a policy\n"
  "pipeline and an XML guard stage, and records each decision in a\n"
  "tamper-evident audit archive before release. Includes portcullisd, the\n"
  "policy and audit tools, the schemas, a hardened systemd unit (not enabled\n"
  "on install) and example configurations.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
# Stripped programs (RelWithDebInfo keeps the symbols in the build tree only).
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${PORTCULLIS_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Libraries found by dpkg-shlibdeps; systemd-sysusers and systemd-tmpfiles for
# the postinst (in systemd on Debian 12, or the standalone packages without it).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd | systemd-standalone-sysusers, systemd | systemd-standalone-tmpfiles")
# nft shows the side firewall's tables; portcullisd itself speaks netlink (libnftables).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nftables")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_BINARY_DIR}/debian/postinst ${PROJECT_BINARY_DIR}/debian/prerm ${PROJECT_BINARY_DIR}/debian/postrm)
# Maintainer scripts 0755, other control files 0644, whatever the build tree's umask.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
