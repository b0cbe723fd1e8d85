// consumer.cc - built by tests/cmake-consumer with find_package(stm).
// Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#include <cstdio>
#include <stm.hpp>
#include <string>

int main()
{
    stm::tvar<int> n{41};
    int r = stm::atomically([&](stm::tx &t) {
        std::string s = "kept across a restart";
        t.write(n, t.read(n) + 1);
        return t.read(n) + static_cast<int>(s.size() - s.size());
    });
    std::printf("consumer_cxx: %d\n", r);
    stm_shutdown();
    return r == 42 ? 0 : 1;
}
