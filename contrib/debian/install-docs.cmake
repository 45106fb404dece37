# Run by CPack only (CPACK_INSTALL_SCRIPTS): the files Debian wants in a package, the
# copyright and changelog.gz in /usr/share/doc/PACKAGE and the manual pages, compressed with
# gzip -9n (reproducible).
set(src "${CPACK_CDP_SYNC_SOURCE_DIR}/contrib/debian")
set(doc "${CMAKE_INSTALL_PREFIX}/share/doc/cdp-sync")
set(work "${CPACK_TOPLEVEL_DIRECTORY}/deb-docs")
file(MAKE_DIRECTORY "${work}")
configure_file("${src}/changelog.in" "${work}/changelog" @ONLY)
configure_file("${CPACK_CDP_SYNC_SOURCE_DIR}/docs/man/cdp-sync.1" "${work}/cdp-sync.1" COPYONLY)
configure_file("${CPACK_CDP_SYNC_SOURCE_DIR}/docs/man/cdp-sync-sim.1" "${work}/cdp-sync-sim.1" COPYONLY)
execute_process(COMMAND gzip -9nf "${work}/changelog" "${work}/cdp-sync.1" "${work}/cdp-sync-sim.1"
                COMMAND_ERROR_IS_FATAL ANY)
file(INSTALL "${src}/copyright" "${work}/changelog.gz" DESTINATION "${doc}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${work}/cdp-sync.1.gz" "${work}/cdp-sync-sim.1.gz" DESTINATION "${CMAKE_INSTALL_PREFIX}/share/man/man1"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
