/* agent/base/kconfig.h - IS_ENABLED() for Kconfig booleans, as in Linux and Zephyr. */
#ifndef BERTH_KCONFIG_H
#define BERTH_KCONFIG_H

#define BERTH_ARG_PLACEHOLDER_1 0,
#define BERTH_TAKE_SECOND(ignored, val, ...) val
#define BERTH_IS_ENABLED3(arg1_or_junk) BERTH_TAKE_SECOND(arg1_or_junk 1, 0, 0)
#define BERTH_IS_ENABLED2(val) BERTH_IS_ENABLED3(BERTH_ARG_PLACEHOLDER_##val)
/* 1 when CONFIG_x is defined to 1 (Kconfig y), else 0; usable in if () and #if. */
#define IS_ENABLED(option) BERTH_IS_ENABLED2(option)

#endif
