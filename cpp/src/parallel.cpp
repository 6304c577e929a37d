// Thread-count policy: one OpenMP pool, sized per call.
#include "padfree/parallel.h"

#include <omp.h>

namespace padfree {

int resolve_threads(int requested)
{
    if (requested > 0) return requested;
    const int available = omp_get_max_threads();
    return available > 0 ? available : 1;
}

int openmp_max_threads() { return omp_get_max_threads(); }

int openmp_version() { return _OPENMP; }

}  // namespace padfree
