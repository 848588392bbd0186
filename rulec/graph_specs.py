"""The names of the graph specs `--graph` takes (rulec.graphs builds them);
here, with no imports, so that `rulec --help` stays fast."""

SPECS = ("ring:N", "grid:WxH", "moore:WxH", "layered:A,B,C", "er:N,P[,SEED]",
         "waxman:N[,SEED]", "powerlaw:N,D[,SEED]", "complete:N", "file:PATH")
