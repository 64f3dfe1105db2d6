/* agent/base/version.h - the release version of berth. */
#ifndef BERTH_VERSION_H
#define BERTH_VERSION_H
#define BERTH_VERSION "0.2.0"
#endif
