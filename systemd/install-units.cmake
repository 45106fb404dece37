# Installs systemd/*.service rewritten for CMAKE_INSTALL_PREFIX (run by `cmake --install`
# and CPack; cdp_sync_source_dir and cdp_sync_binary_dir are set by CMakeLists.txt). The
# files in systemd/ name /usr/local, the default prefix.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(unit_dir /lib/systemd/system)
else()
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(generated "${cdp_sync_binary_dir}/systemd-units")
file(REMOVE_RECURSE "${generated}")
file(GLOB units "${cdp_sync_source_dir}/systemd/*.service")
foreach(unit IN LISTS units)
  get_filename_component(name "${unit}" NAME)
  file(READ "${unit}" text)
  string(REPLACE "/usr/local/bin/cdp-sync" "${CMAKE_INSTALL_PREFIX}/bin/cdp-sync" text "${text}")
  string(REPLACE "/usr/local/share/doc/cdp-sync" "${CMAKE_INSTALL_PREFIX}/share/doc/cdp-sync" text "${text}")
  file(WRITE "${generated}/${name}" "${text}")
  file(INSTALL "${generated}/${name}" DESTINATION "${unit_dir}"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
