# Gloo process groups (compress/train/distributed.cpp) for worlds larger than one. The torch wheel's
# libtorch_cpu.so already holds c10d (TCPStore, ProcessGroupGloo) and gloo itself, linked in statically; what it
# lacks are gloo's headers, which ProcessGroupGloo.hpp includes: Debian's libgloo-dev provides them. Without them
# Joule still builds and runs a world of one (distributed_available() is false).
#
# The defines go on train/distributed.cpp alone, compiled outside the unity batches so that the other sources of
# joule_compress never see JOULE_HAVE_GLOO nor parse gloo's and ProcessGroupGloo's headers. (USE_C10D_GLOO, which
# ProcessGroupGloo.hpp is empty without, already comes with the torch target's interface definitions; it is
# named here so as not to depend on that.) -DJOULE_GLOO=OFF builds without it even where the headers are.
option(JOULE_GLOO "multi-process training through Gloo when its headers are found" ON)
if(JOULE_GLOO)
  find_path(JOULE_GLOO_INCLUDE_DIR gloo/config.h)
endif()
if(JOULE_GLOO AND JOULE_GLOO_INCLUDE_DIR)
  message(STATUS "Gloo headers: ${JOULE_GLOO_INCLUDE_DIR} (multi-process training on)")
  set(_joule_dist_src ${CMAKE_CURRENT_LIST_DIR}/distributed.cpp)
  set_source_files_properties(${_joule_dist_src} TARGET_DIRECTORY joule_compress PROPERTIES
                              SKIP_UNITY_BUILD_INCLUSION ON COMPILE_DEFINITIONS "JOULE_HAVE_GLOO;USE_C10D_GLOO")
  # /usr/include is searched anyway; naming it with -isystem would break #include_next in the C++ headers.
  if(NOT JOULE_GLOO_INCLUDE_DIR STREQUAL "/usr/include")
    set_source_files_properties(${_joule_dist_src} TARGET_DIRECTORY joule_compress PROPERTIES
                                INCLUDE_DIRECTORIES ${JOULE_GLOO_INCLUDE_DIR})
  endif()
else()
  message(STATUS "Gloo off or its headers not found (apt-get install libgloo-dev): multi-process training off")
endif()
