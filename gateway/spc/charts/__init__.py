"""Chart types: the ChartType interface (base), one module per chart (imr, xbar_r, xbar_s), the limits
every chart shares (limits) and the registry the rest of the gateway asks (registry.CHARTS)."""
