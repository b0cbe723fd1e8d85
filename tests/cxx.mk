## tests/cxx.mk - C++: <stm.h> compiled as C++ (tests/check-cxx-header.sh),
## include/stm.hpp's tests.  Included from tests/local.mk; paths are
## relative to the top of the tree.  Everything is skipped (or not built)
## when configure found no working C++17 compiler (HAVE_CXX).
dist_check_SCRIPTS += tests/check-cxx-header.sh
EXTRA_DIST += tests/cxx_header.cc
AM_TESTS_ENVIRONMENT += \
	STM_HAVE_CXX='$(HAVE_CXX)'; STM_CXX='$(CXX)'; STM_CXXFLAGS='$(CXXFLAGS)'; \
	STM_LIBS='$(LIBS)'; export STM_HAVE_CXX STM_CXX STM_CXXFLAGS STM_LIBS;
