/*
 * cxx_header.cc - <stm.h> from C++: it compiles as C++11 and C++17 with
 * -Wall -Wextra -Werror -pedantic (tests/check-cxx-header.sh builds it
 * with every C++ compiler it finds), and its types, macros and inline
 * helpers work from C++.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#include <stm.h>

#include <cstdio>
#include <type_traits>

static_assert(sizeof(stm_tvar) == 2 * sizeof(void *), "a TVar is two words");
static_assert(std::is_standard_layout<stm_tvar>::value, "stm_tvar is standard layout");
static_assert(std::is_trivially_copyable<stm_tvar>::value, "stm_tvar is a plain C struct");
static_assert(STM_SEC(1) == STM_MSEC(1000) && STM_MSEC(1) == STM_USEC(1000), "time macros");

namespace
{

int passed, failed;

void check(bool ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        std::printf("FAIL: %s\n", what);
    }
}

/* a TVar with static storage, and TVars embedded in a C++ struct */
stm_tvar counter = STM_TVAR_INIT(41);
struct node {
    int key;
    stm_tvar next;
    stm_tvar value;
};

/* stm_fn is a C function type; a function with C++ linkage of the same
 * type converts to it with every compiler this builds with */
extern "C" int bump(stm_tx *tx, void *)
{
    intptr_t v = stm_read(tx, &counter);
    stm_write(tx, &counter, v + 1);
    return static_cast<int>(v + 1);
}

extern "C" int link_nodes(stm_tx *tx, void *arg)
{
    node *n = static_cast<node *>(arg);
    stm_write_ptr(tx, &n[0].next, &n[1]);
    node *m = static_cast<node *>(stm_read_ptr(tx, &n[0].next));
    stm_write(tx, &m->value, stm_read(tx, &m->value) * 2);
    return m->key;
}

extern "C" int give_up(stm_tx *tx, void *)
{
    stm_write(tx, &counter, 0);
    stm_abort(tx, 7); /* [[noreturn]]: no return needed after it */
}

} // namespace

int main()
{
    check(stm_atomically(bump, nullptr) == 42, "stm_atomically through a C++ function");
    check(stm_tvar_peek(&counter) == 42, "the static TVar was written");

    node nodes[2];
    nodes[0].key = 1;
    nodes[1].key = 2;
    stm_tvar_init(&nodes[0].next, 0);
    stm_tvar_init(&nodes[0].value, 0);
    stm_tvar_init(&nodes[1].next, 0);
    stm_tvar_init(&nodes[1].value, 21);
    check(stm_atomically(link_nodes, nodes) == 2, "stm_read_ptr / stm_write_ptr");
    check(stm_tvar_peek(&nodes[1].value) == 42, "an embedded TVar was written");
    check(stm_atomically(give_up, nullptr) == 7, "stm_abort from C++");
    check(stm_tvar_peek(&counter) == 42, "the aborted write was discarded");
    for (node &n : nodes) {
        stm_tvar_destroy(&n.next);
        stm_tvar_destroy(&n.value);
    }
    stm_tvar_destroy(&counter);

    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
