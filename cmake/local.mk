## cmake/local.mk - the CMake package configuration (included from the
## top-level Makefile.am): installed as $(libdir)/cmake/stm/stmConfig.cmake
## and stmConfigVersion.cmake, so that CMake projects can say
## find_package(stm) and target_link_libraries(app stm::stm).  Made by
## make (not configure) so that they find the library relative to their
## own location: <libdir>/cmake/stm/../.. is the libdir, and the prefix is
## the libdir with its path below $(prefix) taken off.
cmakeconfigdir = $(libdir)/cmake/stm
cmakeconfig_DATA = cmake/stmConfig.cmake cmake/stmConfigVersion.cmake
CLEANFILES += $(cmakeconfig_DATA)
EXTRA_DIST += cmake/stmConfig.cmake.in cmake/stmConfigVersion.cmake.in

cmake/stmConfig.cmake cmake/stmConfigVersion.cmake: Makefile
	$(AM_V_GEN)$(MKDIR_P) cmake && \
	case '$(libdir)' in \
	  '$(prefix)'/*) rel='$(libdir)'; rel=$${rel#'$(prefix)'/} ;; \
	  *) rel= ;; \
	esac; \
	if test -n "$$rel"; then \
	  up=$$(printf '%s\n' "$$rel" | sed 's|[^/][^/]*|..|g'); \
	else up='$(prefix)'; fi; \
	case '$(includedir)' in \
	  '$(prefix)'/*) inc='$(includedir)'; inc=$${inc#'$(prefix)'/} ;; \
	  *) inc='$(includedir)' ;; \
	esac; \
	sed -e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g' \
	    -e "s|@STM_LIBDIR_UP[@]|$$up|g" \
	    -e "s|@STM_INCLUDEDIR_REL[@]|$$inc|g" \
	    $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
cmake/stmConfig.cmake: $(srcdir)/cmake/stmConfig.cmake.in
cmake/stmConfigVersion.cmake: $(srcdir)/cmake/stmConfigVersion.cmake.in
