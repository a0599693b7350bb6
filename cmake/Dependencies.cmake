# Every dependency is a Debian 12 package (scripts/install-deps.sh installs them).
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS json url)
find_package(OpenSSL 3 REQUIRED)
find_package(CURL REQUIRED)
find_package(CLI11 2.1 REQUIRED CONFIG)
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL REQUIRED)

# SOCI 4.0.3 ships neither a CMake config nor a pkg-config file: wrap it in imported targets.
find_path(SOCI_INCLUDE_DIR soci/soci.h REQUIRED)
foreach(_part core sqlite3 postgresql)
  find_library(SOCI_${_part}_LIBRARY NAMES soci_${_part} REQUIRED)
  add_library(soci::${_part} UNKNOWN IMPORTED)
  set_target_properties(soci::${_part} PROPERTIES
    IMPORTED_LOCATION "${SOCI_${_part}_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${SOCI_INCLUDE_DIR}")
endforeach()
target_link_libraries(soci::sqlite3 INTERFACE soci::core SQLite::SQLite3)
target_link_libraries(soci::postgresql INTERFACE soci::core PostgreSQL::PostgreSQL)
target_include_directories(soci::postgresql INTERFACE ${PostgreSQL_INCLUDE_DIRS})
