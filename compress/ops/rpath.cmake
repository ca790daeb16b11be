# Relative RUNPATHs, so that a copied build or an installed package still finds its libraries (no absolute
# build-venv paths). joule_rpath(VAR DIR): the RUNPATH entries for a binary that lives in DIR:
#   $ORIGIN, $ORIGIN/../lib      libjoule_ops.so beside it, or in the build's lib/ beside bin/;
#   $ORIGIN/../torch/lib         the pip layout: site-packages/joule/ next to site-packages/torch/;
#   $ORIGIN/<relative>           the LibTorch this build links (build/lib -> ../../.venv/lib/python3.11/site-packages/
#                                torch/lib: a copy of the checkout with its venv link still loads);
# and, with the CUDA kernels, the torch wheel's CUDA runtime (nvidia/cu13/lib) by the same two routes.
# Call after find_package(Torch) (TORCH_INSTALL_PREFIX).
function(joule_rpath var dir)
  get_filename_component(torch_lib "${TORCH_INSTALL_PREFIX}/lib" ABSOLUTE)
  set(entries "$ORIGIN" "$ORIGIN/../lib" "$ORIGIN/../torch/lib")
  file(RELATIVE_PATH rel "${dir}" "${torch_lib}")
  list(APPEND entries "$ORIGIN/${rel}")
  if(TARGET joule_cuda)
    foreach(sub cu13 cuda_runtime)  # CUDA 13 wheels, older ones
      get_filename_component(cuda_lib "${torch_lib}/../../nvidia/${sub}/lib" ABSOLUTE)
      if(EXISTS "${cuda_lib}")
        file(RELATIVE_PATH rel "${dir}" "${cuda_lib}")
        list(APPEND entries "$ORIGIN/../nvidia/${sub}/lib" "$ORIGIN/${rel}")
      endif()
    endforeach()
  endif()
  set(${var} "${entries}" PARENT_SCOPE)
endfunction()
