// Thread-count policy shared by every OpenMP driver.
#pragma once

namespace padfree {

// `requested` <= 0 means "OpenMP's default" (OMP_NUM_THREADS, threadpoolctl, ...).
int resolve_threads(int requested);

// OpenMP runtime facts for cpu_info().
int openmp_max_threads();
int openmp_version();

}  // namespace padfree
