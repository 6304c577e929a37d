// The padfree._core extension module: one registration call per kernel family.
#include "common.h"

#include "padfree/dispatch.h"

PYBIND11_MODULE(_core, m)
{
    m.doc() = "padfree's C++ kernels. Use the padfree package, not this module.";
    // Resolve the ISA now so a bad PADFREE_ISA fails at import with its message.
    padfree::current_isa();
    padfree::bindings::register_info(m);
    padfree::bindings::register_softmax(m);
    padfree::bindings::register_dense(m);
    padfree::bindings::register_attention(m);
    padfree::bindings::register_encoder(m);
}
