from anycast_ctl.entry import main

main()
