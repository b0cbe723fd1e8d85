## tests/cxx.mk - C++: <stm.h> compiled as C++ (tests/check-cxx-header.sh),
## include/stm.hpp's tests.  Included from tests/local.mk; paths are
## relative to the top of the tree.  Everything is skipped (or not built)
## when configure found no working C++17 compiler (HAVE_CXX).
dist_check_SCRIPTS += tests/check-cxx-header.sh
EXTRA_DIST += tests/cxx_header.cc
AM_TESTS_ENVIRONMENT += \
	STM_HAVE_CXX='$(HAVE_CXX)'; STM_CXX='$(CXX)'; STM_CXXFLAGS='$(CXXFLAGS)'; \
	STM_LIBS='$(LIBS)'; export STM_HAVE_CXX STM_CXX STM_CXXFLAGS STM_LIBS;

## C++ test programs: plain programs that end with "N passed, M failed"
## (exit status 0 only if M is 0).  They see only the public headers.
CXX_TEST_CPPFLAGS = -I$(top_srcdir)/include
AM_CXXFLAGS = $(STD_CXXFLAGS) $(WARN_CXXFLAGS)
if HAVE_CXX
check_PROGRAMS += tests/cxx_stm
tests_cxx_stm_SOURCES = tests/cxx_stm.cc
tests_cxx_stm_CPPFLAGS = $(CXX_TEST_CPPFLAGS)
tests_cxx_stm_LDADD = lib/libstm.la
else
EXTRA_DIST += tests/cxx_stm.cc
endif

## CMake: tests/check-cmake.sh builds tests/cmake-consumer against a
## staged install (find_package(stm), stm::stm).
dist_check_SCRIPTS += tests/check-cmake.sh
EXTRA_DIST += tests/cmake-consumer/CMakeLists.txt tests/cmake-consumer/consumer.c \
	tests/cmake-consumer/consumer.cc
AM_TESTS_ENVIRONMENT += \
	STM_PREFIX='$(prefix)'; STM_VERSION='$(PACKAGE_VERSION)'; \
	export STM_PREFIX STM_VERSION;
